"""Key-view figures are rendered from the stored pyramid, with annotations drawn where they belong."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import numpy as np
import openslide
import pytest
from PIL import Image

import storage
from pathology_hub.domain.errors import ValidationFailed
from pathology_hub.reporting.figures import render_figure
from pathology_hub.slides.synthetic import write_synthetic_slide
from pathology_hub.tiling.pipeline import build_pyramid

pytestmark = pytest.mark.no_database

W, H = 3000, 2200


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    """A synthetic Aperio slide tiled into a folder-backed object store, as ingest does."""
    root = tmp_path_factory.mktemp("fig")
    path = write_synthetic_slide(root / "s.svs", W, H, seed=5)
    store = storage.open_store(f"file://{root / 'objects'}")
    slide = SimpleNamespace(uid="ab" * 16, pyramid_version=1)
    build_pyramid(str(path), store, f"pyramids/{slide.uid}/v1", workers=1)
    return SimpleNamespace(store=store, slide=slide, path=path)


def _png(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    return np.asarray(img.convert("RGB")).astype(int)


def _red(px: np.ndarray) -> np.ndarray:
    return (px[..., 0] > 200) & (px[..., 1] < 70) & (px[..., 2] < 70)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(float) - b.astype(float)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _reference(path, bounds, size) -> np.ndarray:
    """The same region straight from the original via OpenSlide, resized the same way."""
    x0, y0, x1, y1 = bounds
    with openslide.OpenSlide(str(path)) as osr:
        region = osr.read_region((x0, y0), 0, (x1 - x0, y1 - y0)).convert("RGB")
    return np.asarray(region.resize(size, Image.LANCZOS)).astype(int)


@pytest.mark.parametrize("bounds,width", [
    ((600, 400, 1400, 1000), 800),     # 1:1, level 0
    ((0, 0, W, H), 500),              # whole slide, a coarse level
    ((1000, 700, 2600, 1900), 400),    # 4x downsample
])
def test_pixels_match_the_original_region(tiled, bounds, width):
    started = time.perf_counter()
    data = render_figure(tiled.store, tiled.slide, bounds, width, [])
    elapsed = time.perf_counter() - started
    px = _png(data)
    x0, y0, x1, y1 = bounds
    expected_h = round(width * (y1 - y0) / (x1 - x0))
    assert px.shape[:2] == (expected_h, width)
    ref = _reference(tiled.path, bounds, (width, expected_h))
    assert _psnr(px, ref) > 30, "figure pixels differ from the slide region"
    assert elapsed < 5


def test_width_is_clamped_and_aspect_kept(tiled):
    small = _png(render_figure(tiled.store, tiled.slide, (0, 0, 1000, 500), 10, []))
    assert small.shape[:2] == (32, 64)
    big = _png(render_figure(tiled.store, tiled.slide, (0, 0, 200, 100), 10_000, []))
    assert big.shape[:2] == (1200, 2400)


def test_red_polygon_is_drawn_where_it_lies(tiled):
    bounds = (800, 600, 1800, 1400)  # 1000 x 800 level-0 px -> 500 x 400 output (scale 0.5)
    square = {"type": "Polygon", "coordinates": [[[1000, 800], [1400, 800], [1400, 1200], [1000, 1200], [1000, 800]]]}
    plain = _png(render_figure(tiled.store, tiled.slide, bounds, 500, []))
    drawn = _png(render_figure(tiled.store, tiled.slide, bounds, 500, [{"geometry": square, "color": "#ff0000"}]))
    assert drawn.shape[:2] == (400, 500)
    assert not _red(plain).any(), "the synthetic tissue must not already contain pure red"
    red = _red(drawn)
    # the square maps to x 100..300, y 100..300 of the output: red along its edges only
    assert red[100, 150:250].mean() > 0.9 or red[99:102, 150:250].any(axis=0).mean() > 0.9
    assert red[150:250, 299:302].any(axis=1).mean() > 0.9
    assert not red[150:250, 150:250].any(), "an outline, not a filled area"
    assert not red[:90].any() and not red[:, 310:].any(), "nothing drawn outside the shape"


def test_points_and_lines(tiled):
    bounds = (0, 0, 1000, 1000)
    shapes = [{"geometry": {"type": "Point", "coordinates": [500, 500]}, "color": "#00ff00"},
              {"geometry": {"type": "LineString", "coordinates": [[100, 900], [900, 900]]}, "color": "#0000ff"}]
    px = _png(render_figure(tiled.store, tiled.slide, bounds, 500, shapes))
    green = (px[..., 1] > 200) & (px[..., 0] < 70) & (px[..., 2] < 70)
    blue = (px[..., 2] > 200) & (px[..., 0] < 70) & (px[..., 1] < 70)
    assert green[235:265, 235:265].any() and not green[:200].any()
    assert blue[448:452, 60:440].any(axis=0).mean() > 0.9


def test_rotation_swaps_width_and_height_clockwise(tiled):
    bounds = (800, 600, 1800, 1400)
    mark = {"geometry": {"type": "Point", "coordinates": [820, 620]}, "color": "#ff0000"}  # top-left corner
    upright = _png(render_figure(tiled.store, tiled.slide, bounds, 500, [mark]))
    turned = _png(render_figure(tiled.store, tiled.slide, bounds, 500, [mark], rotation=90))
    assert upright.shape[:2] == (400, 500)
    assert turned.shape[:2] == (500, 400)
    ys, xs = np.nonzero(_red(turned))
    # clockwise: the top-left corner ends up top-right
    assert xs.mean() > 350 and ys.mean() < 50
    odd = _png(render_figure(tiled.store, tiled.slide, bounds, 500, [], rotation=30))
    assert odd.shape[1] > 500 and odd.shape[0] > 400  # expanded to fit


@pytest.mark.parametrize("bounds,code", [
    ((W + 10, 0, W + 500, 300), "figure_bounds_outside"),
    ((-900, -900, -100, -100), "figure_bounds_outside"),
    ((100, 100, 100, 400), "figure_bounds_empty"),
    ((500, 500, 400, 600), "figure_bounds_empty"),
    ((0, 0, float("nan"), 10), "figure_bounds_invalid"),
    ((0, 0, 10), "figure_bounds_invalid"),
    (("a", 0, 10, 10), "figure_bounds_invalid"),
])
def test_bad_bounds_are_a_domain_error(tiled, bounds, code):
    with pytest.raises(ValidationFailed) as err:
        render_figure(tiled.store, tiled.slide, bounds, 400, [])
    assert err.value.code == code


def test_bad_shapes_are_a_domain_error(tiled):
    for shape in ({"geometry": {"type": "Circle", "coordinates": [1, 2]}},
                  {"geometry": {"type": "Point", "coordinates": [1, 2]}, "color": "red; drop"},
                  {"geometry": {"type": "Polygon", "coordinates": [[["x", 1]]]}},
                  {"color": "#ff0000"}):
        with pytest.raises(ValidationFailed):
            render_figure(tiled.store, tiled.slide, (0, 0, 500, 500), 200, [shape])


def test_view_overhanging_the_edge_is_filled_white(tiled):
    px = _png(render_figure(tiled.store, tiled.slide, (W - 500, 0, W + 500, 1000), 400, []))
    assert px.shape[:2] == (400, 400)
    assert (px[:, 210:] >= 250).all(), "beyond the slide edge is glass white"


def test_slide_without_pyramid(tiled):
    from pathology_hub.domain.errors import Conflict, NotFound
    with pytest.raises(Conflict):
        render_figure(tiled.store, SimpleNamespace(uid="cd" * 16, pyramid_version=0), (0, 0, 10, 10), 100, [])
    with pytest.raises(NotFound):
        render_figure(tiled.store, SimpleNamespace(uid="cd" * 16, pyramid_version=3), (0, 0, 10, 10), 100, [])
