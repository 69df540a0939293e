"""Upload-time quality checks computed from a slide's thumbnail.

These are warnings, not rejections: a pathologist may still want a slide
without a calibration or with little tissue, but the uploader should be told
before the case is sent out for a second opinion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # pragma: no cover - import only for type checkers
    from .metadata import SlideDescription

#: Below this fraction of tissue pixels the slide is probably blank or
#: the scanner missed the tissue.
DEFAULT_MIN_TISSUE_FRACTION = 0.05
#: Variance of the Laplacian over tissue pixels (grey levels², 512-px
#: thumbnail) below which the scan is called blurry. Measured on the real test
#: scans: 10316 (Aperio JPEG H&E), 4636 (Aperio JP2K frozen section), 12341
#: (Hamamatsu DAPI fluorescence), 1520 (DICOM boxes). A Gaussian blur of radius
#: 2 px on the thumbnail drops them to 17, 8, 50 and (too little tissue) none;
#: radius 1 leaves 350, 134, 1034. 100 sits an order of magnitude below every
#: real scan and above every clearly blurred one.
DEFAULT_MIN_FOCUS_SCORE = 100.0

#: Deep Zoom tile side: an image smaller than one tile in both directions is not a
#: whole-slide scan (a 16 x 16 "SVS" zoomed to fill the screen read "948x").
WHOLE_SLIDE_MIN_SIDE = 254
#: Extensions of whole-slide formats and of camera images, to notice a photo renamed .svs.
_WSI_SUFFIXES = frozenset({".svs", ".ndpi", ".scn", ".mrxs", ".bif", ".vms", ".vmu", ".dcm", ".svslide",
                           ".qptiff", ".czi", ".sdpc", ".tmap", ".kfb", ".isyntax"})
_PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png"})

#: Background luminance below which the slide is treated as dark-field
#: (fluorescence), where tissue is brighter than the background.
_DARK_BACKGROUND_LUMA = 80.0
#: Optical density (log10 units, mean over RGB) above which a bright-field
#: pixel absorbs enough light to count as tissue.
_BRIGHTFIELD_MIN_OD = 0.07
#: HSV saturation (0..1) above which a bright-field pixel counts as stained.
_BRIGHTFIELD_MIN_SATURATION = 0.08
#: Grey levels above the background at which a dark-field pixel is tissue.
_DARKFIELD_MIN_DELTA = 12.0


@dataclass(frozen=True)
class QualityWarning:
    """One problem found at upload, with the numbers behind it."""

    code: str
    message: str
    values: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QualityWarning":
        return cls(code=data["code"], message=data["message"], values=dict(data.get("values") or {}))


@dataclass(frozen=True)
class QualityReport:
    """Measured values (always recorded) and the warnings they triggered."""

    tissue_fraction: float
    focus_score: float | None
    dark_background: bool
    warnings: tuple[QualityWarning, ...] = ()

    @property
    def codes(self) -> list[str]:
        return [w.code for w in self.warnings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "tissue_fraction": self.tissue_fraction,
            "focus_score": self.focus_score,
            "dark_background": self.dark_background,
            "warnings": [w.to_dict() for w in self.warnings],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "QualityReport":
        return cls(
            tissue_fraction=float(data["tissue_fraction"]),
            focus_score=None if data.get("focus_score") is None else float(data["focus_score"]),
            dark_background=bool(data.get("dark_background", False)),
            warnings=tuple(QualityWarning.from_dict(w) for w in data.get("warnings", ())),
        )


def _parse_hex_color(value: str | None) -> tuple[int, int, int] | None:
    if not value:
        return None
    value = value.strip().lstrip("#")
    if len(value) != 6:
        return None
    try:
        return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))
    except ValueError:
        return None


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def estimate_background(rgb: np.ndarray, declared: str | None = None) -> np.ndarray:
    """The glass colour: the declared one, else the median of the image border.

    OpenSlide only reports ``openslide.background-color`` for some vendors;
    fluorescence NDPI files have none, yet their glass is black. The outer
    frame of a whole-slide thumbnail is nearly always glass, so its median is a
    robust fallback.
    """
    parsed = _parse_hex_color(declared)
    if parsed is not None:
        return np.asarray(parsed, dtype=np.float32)
    h, w = rgb.shape[:2]
    b = max(1, min(h, w) // 20)
    frame = np.concatenate(
        [rgb[:b].reshape(-1, 3), rgb[-b:].reshape(-1, 3), rgb[:, :b].reshape(-1, 3), rgb[:, -b:].reshape(-1, 3)]
    )
    return np.median(frame, axis=0).astype(np.float32)


def tissue_mask(rgb: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, bool]:
    """Boolean tissue mask and whether dark-field rules were used.

    Bright field: tissue absorbs light (optical density relative to the glass)
    or is stained (saturation). Dark field (fluorescence, black glass): tissue
    emits light, so it is brighter than the background.
    """
    rgb = rgb.astype(np.float32)
    bg_luma = float(_luma(background))
    if bg_luma < _DARK_BACKGROUND_LUMA:
        # Fluorophores often light a single channel (DAPI is blue, which has
        # almost no weight in luma), so use the brightest channel.
        return rgb.max(axis=-1) > float(background.max()) + _DARKFIELD_MIN_DELTA, True
    od = -np.log10((rgb + 1.0) / (np.maximum(background, rgb) + 1.0))
    mx = rgb.max(axis=-1)
    mn = rgb.min(axis=-1)
    saturation = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1.0), 0.0)
    return (od.mean(axis=-1) > _BRIGHTFIELD_MIN_OD) | (saturation > _BRIGHTFIELD_MIN_SATURATION), False


def focus_score(gray: np.ndarray, mask: np.ndarray) -> float | None:
    """Variance of the 4-neighbour Laplacian over interior tissue pixels."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return None
    g = gray.astype(np.float32)
    lap = g[1:-1, :-2] + g[1:-1, 2:] + g[:-2, 1:-1] + g[2:, 1:-1] - 4.0 * g[1:-1, 1:-1]
    inner = mask[1:-1, 1:-1]
    if inner.sum() < 16:
        return None
    return float(lap[inner].var())


def is_tiny(description: "SlideDescription | None") -> bool:
    """Smaller than one tile both ways: probably not a whole-slide scan."""
    return description is not None and description.width < WHOLE_SLIDE_MIN_SIDE \
        and description.height < WHOLE_SLIDE_MIN_SIDE


def extension_mismatch(filename: str | None, description: "SlideDescription | None") -> QualityWarning | None:
    """A camera image named like a slide (JPEG renamed .svs), or a slide named like a photo."""
    if not filename or description is None or "." not in filename:
        return None
    suffix = "." + filename.rsplit(".", 1)[1].lower()
    found = description.format.upper() if description.kind == "photo" else description.format
    if (description.kind == "photo" and suffix in _WSI_SUFFIXES) or \
            (description.kind == "wsi" and suffix in _PHOTO_SUFFIXES):
        return QualityWarning(
            "extension_mismatch",
            f"The file is named {suffix} but its contents are {found}"
            f"{' (a photograph, not a whole-slide scan)' if description.kind == 'photo' else ''}; "
            "check that the right file was uploaded.",
            {},
        )
    return None


def metadata_warnings(description: "SlideDescription | None", filename: str | None = None) -> list[QualityWarning]:
    """Warnings about what the file says (pixel size, size, name), independent of the pixels."""
    if description is None:
        return []
    out: list[QualityWarning] = []
    if description.ignored_mpp is not None:
        out.append(QualityWarning(
            "implausible_mpp",
            f"The file's resolution tag gives {description.ignored_mpp:.4g} µm per pixel, which is not a "
            "microscope pixel size (it is usually a print resolution such as 72 dpi), so it was ignored: "
            "measurements and the scale bar are not available for this slide.",
            {"mpp": description.ignored_mpp},
        ))
    elif description.mpp_x is None or description.mpp_y is None:
        out.append(QualityWarning(
            "missing_mpp",
            "The file records no pixel size (microns per pixel), so measurements "
            "and scale bars will not be available for this slide.",
        ))
    if is_tiny(description):
        out.append(QualityWarning(
            "not_whole_slide",
            f"The image is only {description.width} × {description.height} pixels, smaller than one "
            f"viewer tile ({WHOLE_SLIDE_MIN_SIDE} px): it is probably not a whole-slide scan, and no "
            "magnification is shown for it.",
            {"width": float(description.width), "height": float(description.height)},
        ))
    mismatch = extension_mismatch(filename, description)
    if mismatch is not None:
        out.append(mismatch)
    return out


def assess_quality(
    thumbnail: Image.Image,
    description: "SlideDescription | None" = None,
    *,
    filename: str | None = None,
    min_tissue_fraction: float = DEFAULT_MIN_TISSUE_FRACTION,
    min_focus_score: float = DEFAULT_MIN_FOCUS_SCORE,
) -> QualityReport:
    """Measure tissue coverage and sharpness; warn about what needs a look."""
    rgb = np.asarray(thumbnail.convert("RGB"))
    background = estimate_background(rgb, description.background_color if description else None)
    mask, dark = tissue_mask(rgb, background)
    fraction = float(mask.mean()) if mask.size else 0.0
    gray = rgb.max(axis=-1) if dark else _luma(rgb.astype(np.float32))
    score = focus_score(gray, mask)

    warnings: list[QualityWarning] = metadata_warnings(description, filename)
    if fraction < min_tissue_fraction:
        warnings.append(
            QualityWarning(
                "low_tissue",
                f"Only {fraction:.1%} of the slide appears to contain tissue "
                f"(expected at least {min_tissue_fraction:.0%}); check that the right "
                "area was scanned.",
                {"tissue_fraction": fraction, "threshold": min_tissue_fraction},
            )
        )
    if score is not None and score < min_focus_score:
        warnings.append(
            QualityWarning(
                "blurry",
                f"The tissue looks out of focus (sharpness score {score:.1f}, "
                f"expected at least {min_focus_score:.0f}); consider rescanning.",
                {"focus_score": score, "threshold": min_focus_score},
            )
        )
    return QualityReport(
        tissue_fraction=fraction,
        focus_score=score,
        dark_background=dark,
        warnings=tuple(warnings),
    )
