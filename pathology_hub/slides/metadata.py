"""What ingest records about a slide, and how it is read from OpenSlide.

The description is computed inside the sandboxed probe and travels to the web
process as JSON, so everything here is plain data with ``to_dict``/``from_dict``.
Vendor properties are filtered before they leave the probe: scanners store
case numbers, barcodes and sometimes patient names in them, and the
description ends up in the database and the API.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

from .quality import QualityReport

#: Keys whose values may identify a patient or a case; never stored.
_SENSITIVE_KEY = re.compile(
    r"patient|physician|accession|birth|operator|barcode|filename|specimen|"
    r"container|identifier|institution|\.user$|\.label|slide_name|slidename|"
    r"\.comment$|imagecomments|\.description$|imagedescription|\.title$",
    re.IGNORECASE,
)
#: Bounds keeping a description small enough for a database row.
MAX_PROPERTIES = 300
MAX_PROPERTY_VALUE = 1024
MAX_PROPERTIES_BYTES = 64 * 1024


@dataclass(frozen=True)
class SlideDescription:
    """Everything ingest learned about an accepted upload."""

    kind: str  # "wsi" | "photo"
    format: str  # OpenSlide detect_format (e.g. "aperio", "dicom") or "jpeg"/"png"/"tiff"
    vendor: str | None
    width: int
    height: int
    level_count: int
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp_x: float | None = None
    mpp_y: float | None = None
    objective_power: float | None = None
    scan_date: str | None = None  # ISO 8601, scanner local time
    bounds: tuple[int, int, int, int] | None = None  # x, y, w, h of the non-empty area
    background_color: str | None = None  # "RRGGBB" as OpenSlide reports it
    has_icc_profile: bool = False
    associated_images: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    openable_path: str | None = None  # inside an extracted archive, relative POSIX path
    quality: QualityReport | None = None
    #: Where mpp_x/mpp_y came from: "vendor", "tiff-resolution", "qptiff-xml"; None when unknown.
    mpp_source: str | None = None
    #: A pixel size the file declared but that was not trusted (e.g. 352.8 from a 72-dpi tag).
    ignored_mpp: float | None = None
    #: "fluorescence" when the file itself says so (NDPI fluorescence channel); None: not stated.
    modality: str | None = None
    #: Fluorescence/multiplex/deep images: one entry per channel (index, name, colour "rrggbb",
    #: window [lo, hi] in the file's sample values, prefix "c{k}" under the slide's pyramid).
    channels: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "quality":
                value = None if value is None else value.to_dict()
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SlideDescription":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        kw["level_dimensions"] = tuple((int(w), int(h)) for w, h in kw.get("level_dimensions", ()))
        kw["level_downsamples"] = tuple(float(d) for d in kw.get("level_downsamples", ()))
        kw["associated_images"] = tuple(kw.get("associated_images", ()))
        kw["channels"] = tuple(dict(c) for c in kw.get("channels") or ())
        if kw.get("bounds") is not None:
            kw["bounds"] = tuple(int(v) for v in kw["bounds"])
        kw["properties"] = {str(k): str(v) for k, v in (kw.get("properties") or {}).items()}
        if kw.get("quality") is not None:
            kw["quality"] = QualityReport.from_dict(kw["quality"])
        return cls(**kw)

    def with_changes(self, **changes: Any) -> "SlideDescription":
        return replace(self, **changes)


def _float(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if out > 0 and out == out and out != float("inf") else None


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _iso(value: dt.datetime | dt.date) -> str:
    return value.isoformat()


def _try_formats(value: str, formats: tuple[str, ...]) -> dt.datetime | None:
    value = value.strip()
    for fmt in formats:
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    return None


def scan_date_from_properties(props: Mapping[str, str]) -> str | None:
    """Best-effort acquisition time from vendor properties, as ISO 8601.

    Each vendor stores it differently; the generic TIFF ``DateTime`` tag is
    the fallback because most scanners write it when the file is created.
    """
    if "aperio.Date" in props:
        date = _try_formats(props["aperio.Date"], ("%m/%d/%y", "%m/%d/%Y", "%Y-%m-%d"))
        if date is not None:
            time = _try_formats(props.get("aperio.Time", ""), ("%H:%M:%S",))
            if time is not None:
                date = date.replace(hour=time.hour, minute=time.minute, second=time.second)
                return _iso(date)
            return _iso(date.date())
    for key in ("dicom.AcquisitionDateTime", "philips.DICOM_ACQUISITION_DATETIME"):
        if key in props:
            parsed = _try_formats(props[key].split(".")[0].split("+")[0], ("%Y%m%d%H%M%S", "%Y%m%d%H%M", "%Y%m%d"))
            if parsed is not None:
                return _iso(parsed)
    if "dicom.AcquisitionDate" in props:
        parsed = _try_formats(props["dicom.AcquisitionDate"], ("%Y%m%d",))
        if parsed is not None:
            return _iso(parsed.date())
    for key in ("leica.creation-date", "mirax.GENERAL.SLIDE_CREATIONDATETIME", "sakura.Date", "ventana.ScanDate"):
        if key in props:
            text = props[key].strip()
            parsed = _try_formats(
                text.replace("Z", ""),
                ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"),
            )
            if parsed is not None:
                return _iso(parsed)
    if "tiff.DateTime" in props:
        parsed = _try_formats(props["tiff.DateTime"], ("%Y:%m:%d %H:%M:%S", "%Y-%m-%d %H:%M:%S"))
        if parsed is not None:
            return _iso(parsed)
    return None


def select_properties(props: Mapping[str, str]) -> dict[str, str]:
    """Vendor properties worth keeping: no identifiers, bounded in size.

    OpenSlide's own keys come first so that the size cap drops vendor noise
    (shading tables, calibration blobs) rather than the essentials.
    """
    keys = sorted(props, key=lambda k: (not k.startswith("openslide."), k))
    out: dict[str, str] = {}
    total = 0
    for key in keys:
        if len(out) >= MAX_PROPERTIES:
            break
        if _SENSITIVE_KEY.search(key):
            continue
        value = str(props[key])
        if len(value) > MAX_PROPERTY_VALUE:
            continue
        size = len(key) + len(value)
        if total + size > MAX_PROPERTIES_BYTES:
            continue
        out[key] = value
        total += size
    return out


#: A TIFF resolution tag is a pixel size only within this range (µm/px): scanners write
#: 0.1-2; 72/96/300 dpi "print" tags give 352.8/264.6/84.7 and must not become a scale bar.
TRUSTED_RESOLUTION_MPP = (0.05, 10.0)
_RESOLUTION_UNIT_UM = {"centimeter": 10_000.0, "inch": 25_400.0}


def _resolution_mpp(props: Mapping[str, str], axis: str) -> float | None:
    """µm/px a TIFF resolution tag claims, whatever its unit (None when absent or unitless)."""
    per_unit = _float(props.get(f"tiff.{axis.upper()}Resolution"))
    unit = _RESOLUTION_UNIT_UM.get((props.get("tiff.ResolutionUnit") or "").strip().lower())
    return unit / per_unit if per_unit and unit else None


def trusted_mpp(props: Mapping[str, str], qptiff_mpp: float | None = None) -> tuple[float | None, float | None, str | None, float | None]:
    """(mpp_x, mpp_y, source, ignored) from metadata that can be trusted.

    Vendor calibrations (Aperio MPP, DICOM pixel spacing, MIRAX...) arrive as
    ``openslide.mpp-*``; QPTIFF's XML PixelSizeMicrons comes from the probe. When OpenSlide's
    value is nothing but the TIFF resolution tag (generic TIFF, NDPI), it counts only with a
    centimetre/inch unit and within :data:`TRUSTED_RESOLUTION_MPP`; otherwise the pixel size
    is unknown, and the ignored value is kept so quality control can say why.
    """
    if qptiff_mpp is not None:
        return qptiff_mpp, qptiff_mpp, "qptiff-xml", None
    import openslide

    mx, my = _float(props.get(openslide.PROPERTY_NAME_MPP_X)), _float(props.get(openslide.PROPERTY_NAME_MPP_Y))
    if mx is None or my is None:
        return None, None, None, None
    rx, ry = _resolution_mpp(props, "x"), _resolution_mpp(props, "y")
    from_tag = rx is not None and ry is not None and abs(rx - mx) <= 1e-6 * mx and abs(ry - my) <= 1e-6 * my
    raw_x = _float(props.get("tiff.XResolution"))
    if not from_tag and raw_x is not None and props.get(openslide.PROPERTY_NAME_VENDOR) == "generic-tiff":
        from_tag = True  # generic TIFF has no other source: the tag with a unit OpenSlide understood
    if not from_tag:
        return mx, my, "vendor", None
    low, high = TRUSTED_RESOLUTION_MPP
    if rx is not None and ry is not None and low <= mx <= high and low <= my <= high:
        return mx, my, "tiff-resolution", None
    return None, None, None, mx


def describe_openslide(slide: Any, detected_format: str, facts: Any = None) -> SlideDescription:
    """Build a description from an open ``openslide.OpenSlide`` (``facts``: :class:`.tiffinfo.TiffFacts`)."""
    import openslide  # local import: the web process never needs the native library

    props = dict(slide.properties)
    fluorescence = getattr(facts, "fluorescence", None)
    if fluorescence:
        props["hamamatsu.Fluorescence"] = fluorescence
    mpp_x, mpp_y, mpp_source, ignored_mpp = trusted_mpp(props, getattr(facts, "qptiff_mpp", None))
    bounds = None
    bx, by, bw, bh = (
        _int(props.get(openslide.PROPERTY_NAME_BOUNDS_X)),
        _int(props.get(openslide.PROPERTY_NAME_BOUNDS_Y)),
        _int(props.get(openslide.PROPERTY_NAME_BOUNDS_WIDTH)),
        _int(props.get(openslide.PROPERTY_NAME_BOUNDS_HEIGHT)),
    )
    if None not in (bx, by, bw, bh):
        bounds = (bx, by, bw, bh)
    width, height = slide.dimensions
    return SlideDescription(
        kind="wsi",
        format=detected_format,
        vendor=props.get(openslide.PROPERTY_NAME_VENDOR),
        width=int(width),
        height=int(height),
        level_count=int(slide.level_count),
        level_dimensions=tuple((int(w), int(h)) for w, h in slide.level_dimensions),
        level_downsamples=tuple(float(d) for d in slide.level_downsamples),
        mpp_x=mpp_x,
        mpp_y=mpp_y,
        mpp_source=mpp_source,
        ignored_mpp=ignored_mpp,
        modality="fluorescence" if fluorescence else None,
        objective_power=_float(props.get(openslide.PROPERTY_NAME_OBJECTIVE_POWER)),
        scan_date=scan_date_from_properties(props),
        bounds=bounds,
        background_color=props.get(openslide.PROPERTY_NAME_BACKGROUND_COLOR),
        has_icc_profile=slide.color_profile is not None,
        associated_images=tuple(sorted(slide.associated_images)),
        properties=select_properties(props),
    )


def describe_photo(image: Any, fmt: str) -> SlideDescription:
    """Build a description for a plain camera image opened with Pillow.

    Camera DPI tags describe print size, not the microscope's optics, so no
    microns-per-pixel is derived from them.
    """
    width, height = image.size
    exif_date = None
    try:
        exif = image.getexif()
        raw = exif.get(0x0132)  # DateTime
        if raw:
            parsed = _try_formats(str(raw), ("%Y:%m:%d %H:%M:%S",))
            exif_date = _iso(parsed) if parsed else None
    except Exception:  # EXIF is optional and often malformed in camera files
        exif_date = None
    return SlideDescription(
        kind="photo",
        format=fmt,
        vendor=None,
        width=int(width),
        height=int(height),
        level_count=1,
        level_dimensions=((int(width), int(height)),),
        level_downsamples=(1.0,),
        scan_date=exif_date,
        has_icc_profile=bool(image.info.get("icc_profile")),
        properties={"pillow.mode": image.mode, "pillow.format": image.format or fmt.upper()},
    )
