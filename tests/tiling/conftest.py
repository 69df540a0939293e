"""Fixtures for the tiling tests: a folder-backed object store and small synthetic slides."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import storage
from pathology_hub.slides.synthetic import write_synthetic_slide


@pytest.fixture
def store(tmp_path):
    return storage.open_store(f"file://{tmp_path / 'objects'}")


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory) -> Path:
    """2000 x 1500 with two levels, so DeepZoomGenerator reads a real lower level for coarse tiles."""
    return write_synthetic_slide(tmp_path_factory.mktemp("syn") / "small.svs", 2000, 1500, levels=2)


@pytest.fixture(scope="session")
def multiblock_slide(tmp_path_factory) -> Path:
    """Four level-0 blocks (6000 x 4100), enough to kill a build between packs."""
    return write_synthetic_slide(tmp_path_factory.mktemp("syn") / "blocks.svs", 6000, 4100, seed=3)


def decode(data: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    assert img.format == "JPEG"
    return np.asarray(img.convert("RGB"), np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def corrupt_tile(path, index: int, seed: int) -> None:
    """Overwrite level-0 tile ``index`` of a TIFF slide with random bytes (a damaged file)."""
    import tifffile
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offset, count = page.dataoffsets[index], page.databytecounts[index]
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(bytes(np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8)))
