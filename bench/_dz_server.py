"""The naive on-the-fly pattern (openslide-python's deepzoom example): a DeepZoomGenerator
per slide, every tile cut and JPEG-encoded per request. Used only by bench/serving.py."""

import io
import os

import openslide
from flask import Flask, Response
from openslide.deepzoom import DeepZoomGenerator

app = Flask(__name__)
_slide = openslide.OpenSlide(os.environ["BENCH_SLIDE"])
_dz = DeepZoomGenerator(_slide, tile_size=254, overlap=1, limit_bounds=True)


@app.route("/slide_files/<int:level>/<int:col>_<int:row>.jpeg")
def tile(level: int, col: int, row: int):
    img = _dz.get_tile(level, (col, row))
    buf = io.BytesIO()
    img.save(buf, "jpeg", quality=80)
    return Response(buf.getvalue(), mimetype="image/jpeg")
