"""DICOM whole-slide images that OpenSlide refuses, read with ``wsidicom``.

OpenSlide reads standard DICOM WSI and is tried first (see the registry). Some exporters
leave out the instance-level ImageType (0008,0008), which both OpenSlide ("Couldn't get
image flavor") and wsidicom use to tell the pyramid from the label and overview. The
standard also requires the same flavour per frame, in the shared functional group's
Frame Type (0008,9007); when only ImageType is missing, a private copy of the series is
written with ImageType taken from Frame Type and opened with wsidicom. The original is
never changed. Anything else wsidicom cannot open stays a precise "unsupported variant".
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

from PIL import Image

from ..identify import Magic, sniff
from .base import MPP_X, MPP_Y, OBJECTIVE_POWER, VENDOR, ReaderError, SlideReader

#: VL Whole Slide Microscopy Image Storage.
WSM_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
#: Instances of one series never exceed this many files in an upload (see archive limits).
_MAX_SERIES_FILES = 10_000


def series_files(path: Path) -> list[Path]:
    """``path`` and the DICOM files next to it that belong to the same series.

    A series arrives as one folder (see archive.find_openable); a single uploaded file may sit
    next to other slides' originals, which must never be mixed in, so the series UID decides.
    """
    import pydicom

    series = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"]).get(
        "SeriesInstanceUID")
    files = [path]
    for other in sorted(path.parent.iterdir()):
        if len(files) >= _MAX_SERIES_FILES or series is None:
            break
        if other == path or not other.is_file() or sniff(other) is not Magic.DICOM:
            continue
        try:
            uid = pydicom.dcmread(other, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"]).get(
                "SeriesInstanceUID")
        except Exception:  # noqa: BLE001 - an unreadable neighbour is not part of this series
            continue
        if uid == series:
            files.append(other)
    return files


def _frame_type(ds: Any) -> list[str] | None:
    try:
        return list(ds.SharedFunctionalGroupsSequence[0].WholeSlideMicroscopyImageFrameTypeSequence[0].FrameType)
    except (AttributeError, IndexError, KeyError):
        return None


def normalised_series(path: Path) -> tuple[list[Path], Path | None]:
    """The files to open, and the temporary folder holding patched copies (None: none needed).

    Raises ReaderError when an instance lacks ImageType and has no Frame Type to take it from.
    """
    import pydicom

    files = series_files(path)
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    if all("ImageType" in ds for ds in headers):
        return files, None
    tmp = Path(tempfile.mkdtemp(prefix="dicom-wsi-"))
    try:
        out = []
        for src, ds in zip(files, headers):
            target = tmp / f"{len(out):05d}.dcm"
            if "ImageType" in ds:
                shutil.copyfile(src, target)
            else:
                flavour = _frame_type(ds)
                if not flavour:
                    raise ReaderError("an instance has neither ImageType nor a per-frame Frame Type")
                full = pydicom.dcmread(src)
                full.ImageType = flavour
                full.save_as(target)
            out.append(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, tmp


class WsiDicomReader(SlideReader):
    name = "wsidicom"
    #: wsidicom's own errors become ReaderError here: importing wsidicom costs ~1 s, so it is
    #: imported only when a DICOM file is actually opened, never with this module.
    errors = (ReaderError, ValueError, KeyError, AttributeError, OSError)

    def __init__(self, path: str, fmt: str | None = None) -> None:
        from wsidicom import WsiDicom
        from wsidicom.errors import WsiDicomError

        self.path = path
        self.format = "dicom"
        files, self._tmp = normalised_series(Path(path))
        try:
            self.wsi = WsiDicom.open(files if len(files) > 1 else files[0])
        except (WsiDicomError, ValueError, KeyError, AttributeError) as exc:
            self.close()
            raise ReaderError(str(exc) or type(exc).__name__) from exc
        levels = list(self.wsi.levels)
        if not levels:
            self.close()
            raise ReaderError("the series contains no pyramid level")
        self._levels = levels
        w0, h0 = levels[0].size.width, levels[0].size.height
        self._dims = tuple((lv.size.width, lv.size.height) for lv in levels)
        self._downs = tuple((w0 / w + h0 / h) / 2 for w, h in self._dims)
        self._props = self._read_properties()

    @classmethod
    def detect(cls, path: str, magic: Magic) -> str | None:
        """Only VL Whole Slide Microscopy instances: a radiology image keeps its own message."""
        if magic is not Magic.DICOM:
            return None
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except Exception:  # noqa: BLE001 - unreadable header: not ours to claim
            return None
        return "dicom" if str(ds.get("SOPClassUID", "")) == WSM_SOP_CLASS else None

    def _read_properties(self) -> dict[str, str]:
        props = {VENDOR: "dicom"}
        mpp = self.wsi.mpp
        if mpp is not None:
            props[MPP_X], props[MPP_Y] = repr(float(mpp.width)), repr(float(mpp.height))
        import pydicom

        ds = pydicom.dcmread(self.path, stop_before_pixels=True)
        try:
            power = ds.OpticalPathSequence[0].ObjectiveLensPower
            props[OBJECTIVE_POWER] = repr(float(power))
        except (AttributeError, IndexError, TypeError, ValueError):
            pass
        for key in ("Manufacturer", "ManufacturerModelName", "AcquisitionDateTime", "AcquisitionDate"):
            value = ds.get(key)
            if value not in (None, ""):
                props[f"dicom.{key}"] = str(value)
        return props

    @property
    def color_profile(self) -> Any:
        """The optical path's ICC profile, as OpenSlide reports it for standard DICOM WSI."""
        import io

        import pydicom
        from PIL import ImageCms

        try:
            ds = pydicom.dcmread(self.path, stop_before_pixels=True)
            data = ds.OpticalPathSequence[0].ICCProfile
            return ImageCms.ImageCmsProfile(io.BytesIO(data))
        except (AttributeError, IndexError, KeyError, OSError, ImageCms.PyCMSError):
            return None

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._dims

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._downs

    @property
    def properties(self) -> Mapping[str, str]:
        return self._props

    @property
    def associated_images(self) -> Mapping[str, Image.Image]:
        out: dict[str, Image.Image] = {}
        for name, present, read in (("label", self.wsi.labels, self.wsi.read_label),
                                    ("macro", self.wsi.overviews, self.wsi.read_overview)):
            if present:
                out[name] = read().convert("RGB")
        return out

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> Image.Image:
        """OpenSlide's contract: areas outside the image are transparent, not an error."""
        ds = self._downs[level]
        lw, lh = self._dims[level]
        x, y = int(location[0] / ds), int(location[1] / ds)
        w, h = size
        out = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        ix0, iy0, ix1, iy1 = max(x, 0), max(y, 0), min(x + w, lw), min(y + h, lh)
        if ix1 > ix0 and iy1 > iy0:
            from wsidicom.errors import WsiDicomError

            try:
                region = self.wsi.read_region((ix0, iy0), self._levels[level].level, (ix1 - ix0, iy1 - iy0))
            except WsiDicomError as exc:
                raise ReaderError(str(exc) or type(exc).__name__) from exc
            out.paste(region.convert("RGB"), (ix0 - x, iy0 - y))
        return out

    def close(self) -> None:
        wsi = getattr(self, "wsi", None)
        if wsi is not None:
            wsi.close()
        if getattr(self, "_tmp", None) is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


