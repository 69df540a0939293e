"""What a TIFF holds beyond what OpenSlide reports: sample layout, channels, and metadata in XML.

Runs inside the sandboxed probe (tifffile parses only the directories, no pixel data). The
tiling pipeline renders 8-bit grey or RGB(A); 16-bit fluorescence, a multiplex QPTIFF's channel
pages and multi-channel OME-TIFF go through :mod:`.readers.channels` (each channel windowed to
8 bits). What that reader cannot show either (float or 32-bit samples, odd axes) is refused with
what was found, never shown wrong.
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .errors import MULTICHANNEL_IMAGE, UNSUPPORTED_PIXELS, SlideRejected

#: NDPI private tag holding the fluorescence filter/channel name ("DAPI 2 (387)"); absent or
#: empty on bright-field scans. tifffile names it 'Fluorescence' in its NDPI tag table.
NDPI_FLUORESCENCE_TAG = 65434
NDPI_MARKER_TAG = 65420
_QPI_ROOT = "PerkinElmer-QPI-ImageDescription"


@dataclass(frozen=True)
class TiffFacts:
    """Facts read from the TIFF directories that change how the slide is described."""

    qptiff_mpp: float | None = None  # ScanProfile/root/PixelSizeMicrons of a QPTIFF
    fluorescence: str | None = None  # NDPI fluorescence channel name
    channels: int = 0  # channels the channel reader shows (multiplex, fluorescence, >8-bit)


def _qpi_xml(description: str) -> ET.Element | None:
    if _QPI_ROOT not in (description or ""):
        return None
    try:
        return ET.fromstring(description.lstrip("\ufeff").strip())
    except ET.ParseError:
        return None


def _qpi_mpp(root: ET.Element) -> float | None:
    node = root.find("ScanProfile/root/PixelSizeMicrons")
    if node is None:
        node = root.find(".//PixelSizeMicrons")
    try:
        value = float((node.text or "").strip()) if node is not None else 0.0
    except ValueError:
        return None
    return value if 0 < value < 1000 else None


def _ome_channels(description: str) -> int:
    """SizeC of the first OME Image (1 when absent)."""
    match = re.search(r"<Pixels\b[^>]*\bSizeC=\"(\d+)\"", description or "")
    return int(match.group(1)) if match else 1


def inspect_tiff(path: str) -> TiffFacts:
    """Refuse TIFFs the pipeline would show wrong; return the extra facts of the others.

    Raises SlideRejected (``unsupported_pixels`` / ``multichannel_image``) with the bit depth,
    sample count or channel count found. A file tifffile cannot parse is left to the decoders.
    """
    import tifffile

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                description = page.description or ""
                bits = int(page.bitspersample)
                samples = int(page.samplesperpixel)
                photometric = int(page.photometric)
                qpi = _qpi_xml(description)
                is_qpi = qpi is not None or page.software[:15] == "PerkinElmer-QPI"
                channel_pages = 0
                channel_names: list[str] = []
                if is_qpi:
                    for p in tif.pages:
                        if p.shape != page.shape:
                            break
                        channel_pages += 1
                        root = _qpi_xml(p.description or "")
                        name = root.findtext("Name") if root is not None else None
                        if name:
                            channel_names.append(name.strip())
                ome_channels = _ome_channels(description) if tif.is_ome else 1
                fluorescence = None
                if NDPI_MARKER_TAG in page.tags and NDPI_FLUORESCENCE_TAG in page.tags:
                    value = str(page.tags[NDPI_FLUORESCENCE_TAG].value or "").strip()
                    fluorescence = value or None
    except SlideRejected:
        raise
    except Exception:
        return TiffFacts()

    if (is_qpi and channel_pages > 1) or (ome_channels > 1 and samples == 1) or bits > 8:
        shown = _channel_count(path)
        if shown:
            return TiffFacts(qptiff_mpp=_qpi_mpp(qpi) if qpi is not None else None, fluorescence=fluorescence,
                             channels=shown)
    if is_qpi and channel_pages > 1:
        raise _multichannel(channel_pages, "QPTIFF", channel_names)
    if ome_channels > 1 and samples == 1:
        raise _multichannel(ome_channels, "OME-TIFF", [])
    if bits > 8:
        raise SlideRejected(
            UNSUPPORTED_PIXELS,
            f"The image stores {bits} bits per sample ({samples} sample(s) per pixel). The viewer shows "
            "8-bit grey or RGB images only, so this image would be displayed wrongly (for example all white). "
            "Please export it as an 8-bit RGB TIFF or SVS from the scanner or analysis software.",
            {"bits": bits, "samples": samples},
        )
    # 1 sample: grey (MINISWHITE 0, MINISBLACK 1) or palette (3); 3: RGB (2) or YCbCr (6); 4: RGB + alpha.
    allowed = {1: {0, 1, 3}, 3: {2, 6}, 4: {2}}
    if samples not in allowed or photometric not in allowed[samples]:
        raise SlideRejected(
            UNSUPPORTED_PIXELS,
            f"The image has {samples} sample(s) per pixel (TIFF photometric interpretation {photometric}). "
            "The viewer shows 8-bit grey or RGB images only. Please export it as an 8-bit RGB TIFF or SVS.",
            {"bits": bits, "samples": samples},
        )
    return TiffFacts(qptiff_mpp=_qpi_mpp(qpi) if qpi is not None else None, fluorescence=fluorescence)


def _channel_count(path: str) -> int:
    """Channels :class:`~.readers.channels.ChannelTiffReader` shows for this file (0: it cannot)."""
    from .readers.base import ReaderError
    from .readers.channels import channels_of

    try:
        tif, layout = channels_of(path)
    except (ReaderError, Exception):  # noqa: BLE001 - the refusal below says what was found
        return 0
    tif.close()
    return len(layout.channels) if layout is not None else 0


def _multichannel(count: int, kind: str, names: list[str]) -> SlideRejected:
    shown = ", ".join(names[:8])
    listed = f" ({shown})" if shown else ""
    return SlideRejected(
        MULTICHANNEL_IMAGE,
        f"The file is a multi-channel {kind} image with {count} channels{listed}. The viewer cannot yet "
        "show several fluorescence or multiplex channels together; showing only the first channel would "
        "mislead. Please export a composite 8-bit RGB image (TIFF) from the analysis software, or send the "
        "case without this image.",
        {"channels": count, "kind": kind, "names": shown},
    )
