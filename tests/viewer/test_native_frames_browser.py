"""A DICOM frame stored as the scanner's own JPEG (tiling/dicom_frames.py) must look in the browser
as the pipeline decoded it (its blank test, its lower levels): Debian's Chromium decodes such
frames, with each chroma subsampling a scanner may use, to the pixels imagecodecs gives."""

from __future__ import annotations

import base64
import io

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from pathology_hub.tiling.dicom_frames import plain_ycbcr_jpeg

pytestmark = [pytest.mark.browser]

_DECODE = """async (url) => {
  const img = new Image();
  img.src = url;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0);
  return Array.from(ctx.getImageData(0, 0, canvas.width, canvas.height).data);
}"""


def _tissue_like(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256]
    base = np.stack([200 - 60 * np.sin(xx / 11.0 + k) * np.cos(yy / 17.0) for k in range(3)], -1)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("subsampling", [0, 1, 2], ids=["4:4:4", "4:2:2", "4:2:0"])
def test_chromium_decodes_plain_ycbcr_frames_as_the_pipeline(browser, subsampling):
    buf = io.BytesIO()
    Image.fromarray(_tissue_like(subsampling)).save(buf, "JPEG", quality=90, subsampling=subsampling)
    frame = buf.getvalue()
    assert plain_ycbcr_jpeg(frame, 256)
    page = browser.new_page()
    try:
        url = "data:image/jpeg;base64," + base64.b64encode(frame).decode()
        rgba = np.array(page.evaluate(_DECODE, url), np.int16).reshape(256, 256, 4)
    finally:
        page.close()
    ours = imagecodecs.jpeg8_decode(frame).astype(np.int16)
    diff = np.abs(rgba[..., :3] - ours)
    assert diff.max() <= 1, (diff.max(), diff.mean())  # measured: 0 for all three (Chromium 2026-12)
