"""Tiling benchmark: vips dzsave vs OpenSlide DeepZoomGenerator vs pathology_hub.tiling, into S3.

Usage: .venv/bin/python bench/tiling.py [--big] [--skip-slow] [--store URL] [--workers N]
                                        [--size 20000x15000] [--formats aperio-jpeg,aperio-jp2k,...]

Slides: synthetic ones generated here in every format the issue (#19) names - Aperio JPEG,
Aperio JPEG 2000 (tifffile + imagecodecs), deflate-tiled generic TIFF with and without pyramid
levels, DICOM WSI (pydicom), KFB (the platform's writer; vips reads no KFB, so vips tiles a twin
SVS with the same pixels) and a 4-channel 16-bit OME-TIFF (the platform builds the composite and one
8-bit pyramid per channel; vips tiles the four 16-bit pages stacked, cast to 8 bits) - plus the real
files in ../shared/slides.

A file vips cannot read whole gets a twin too (:func:`vips_twin`): Debian's libvips links
OpenSlide 3.4, which reads no DICOM WSI, and its ImageMagick loader then opens the first 256 px
frame alone - a 1-tile pyramid that made vips look 6,000 tiles fast. The twin holds the same
level-0 pixels as a JPEG-tiled TIFF (256 px, quality 85, as the DICOM frames), so vips decodes,
shrinks and encodes what the platform does.

Each contender runs in its own child process, which imports its libraries before its clock
starts (WARM_IMPORTS: the job worker is a long-lived process; "imports_s" in the notes is that
import time, not part of "wall") and then tiles the 600 x 400 slide of the fixed-cost figure once,
outside the clock, as a worker that has tiled a slide before (thread pools and libraries up); peak RSS is the largest sum of the resident
memory of that child and all its descendants (worker processes included), sampled from /proc
every 50 ms. ``vips-zip`` is the baseline the issue names: ``vips dzsave`` into one zip, then one
upload of that zip, measured in the same run. The S3 URL comes from ``scripts/s3-server env``
(started with ``scripts/s3-server start``); without it the benchmark falls back to a file://
store and says so. Both contenders use the platform's tile layout (256 px, no overlap).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "slides"

from pathology_hub.tiling.geometry import OVERLAP, TILE_SIZE  # noqa: E402

import math  # noqa: E402
import threading  # noqa: E402
from typing import Iterator  # noqa: E402

import numpy as np  # noqa: E402
import tifffile  # noqa: E402


# ---------------- peak RSS of a process tree (no psutil) ----------------


def tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants, from /proc (no psutil)."""
    parent = {}
    rss = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
            with open(f"/proc/{name}/statm") as f:
                pages = int(f.read().split()[1])
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        parent[int(name)] = int(fields[1])
        rss[int(name)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, stack = 0, [root]
    children = {}
    for pid, pp in parent.items():
        children.setdefault(pp, []).append(pid)
    while stack:
        pid = stack.pop()
        total += rss.get(pid, 0)
        stack.extend(children.get(pid, []))
    return total

class PeakSampler:
    def __init__(self, pid=None, every=0.05):
        self.pid, self.every, self.peak = pid or os.getpid(), every, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.every)
    def __enter__(self):
        self._t.start(); return self
    def __exit__(self, *exc):
        self._stop.set(); self._t.join()


# ---------------- synthetic slides in every format ----------------

TILE = 256


def _gen(width: int, height: int, max_down: int, seed: int = 0):
    from pathology_hub.slides.synthetic import _Generator  # the shared tissue field (read-only use)
    return _Generator(width, height, 0.45, seed, TILE, max_down=max_down)


def _tiles(gen, w: int, h: int, down: int) -> Iterator[np.ndarray]:
    for ty in range(math.ceil(h / TILE)):
        for tx in range(math.ceil(w / TILE)):
            yield gen.tile_at(down, tx, ty)


def _downs(width: int, height: int, pyramid: bool) -> list[int]:
    downs = [1]
    while pyramid and max(width, height) // (downs[-1] * 4) >= 1024:
        downs.append(downs[-1] * 4)
    return downs


def write_aperio_jp2k(path: Path, width: int, height: int) -> Path:
    """Aperio SVS with JPEG 2000 tiles (compression 33005, RGB), as older ScanScopes write."""
    downs = _downs(width, height, True)
    gen = _gen(width, height, downs[-1])
    head = f"Aperio Image Library v10.0.51\r\n{width}x{height} [0,0 {width}x{height}] ({TILE}x{TILE})"
    opts = dict(tile=(TILE, TILE), compression=33005, compressionargs={"level": 40}, photometric="rgb",
                metadata=None, maxworkers=2)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(_tiles(gen, width, height, 1), shape=(height, width, 3), dtype=np.uint8,
                  description=f"{head} J2K/KDU Q=30|AppMag = 40|MPP = 0.25", **opts)
        thumb = np.full((max(1, height * 512 // width), 512, 3), 240, np.uint8)
        tif.write(thumb, photometric="rgb", metadata=None, description=f"{head} -> 512x{thumb.shape[0]} - ")
        for down in downs[1:]:
            lw, lh = width // down, height // down
            tif.write(_tiles(gen, lw, lh, down), shape=(lh, lw, 3), dtype=np.uint8,
                      description=f"{head} -> {lw}x{lh} J2K/KDU Q=30", **opts)
    return path


def write_generic_tiff(path: Path, width: int, height: int, *, pyramid: bool, compression: str = "zlib") -> Path:
    """Generic tiled TIFF (OpenSlide vendor generic-tiff), deflate by default; optionally with
    2x-step... (4x) reduced levels as successive directories."""
    downs = _downs(width, height, pyramid)
    gen = _gen(width, height, downs[-1])
    opts = dict(tile=(TILE, TILE), compression=compression, photometric="rgb", metadata=None, maxworkers=2)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for down in downs:
            lw, lh = width // down, height // down
            tif.write(_tiles(gen, lw, lh, down), shape=(lh, lw, 3), dtype=np.uint8,
                      subfiletype=1 if down > 1 else 0, **opts)
    return path


def write_dicom_wsi(folder: Path, width: int, height: int) -> Path:
    """DICOM WSI series (one VL Whole Slide Microscopy instance per level, TILED_FULL, JPEG baseline
    frames), from the OpenSlide DICOM fixture's header; returns the level-0 file (OpenSlide finds the rest)."""
    import copy
    import imagecodecs
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import generate_uid
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(str(SHARED / "dicom-boxes_0.dcm"))
    downs = _downs(width, height, True)
    gen = _gen(width, height, downs[-1])
    series, study, pyramid = generate_uid(), generate_uid(), generate_uid()
    first = None
    for n, down in enumerate(downs):
        lw, lh = width // down, height // down
        ds = copy.deepcopy(template)
        frames = [bytes(imagecodecs.jpeg8_encode(np.ascontiguousarray(t), level=85)) for t in _tiles(gen, lw, lh, down)]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.PyramidUID = series, study, pyramid
        ds.ImageType = ["ORIGINAL" if n == 0 else "DERIVED", "PRIMARY", "VOLUME", "NONE" if n == 0 else "RESAMPLED"]
        ds.InstanceNumber = n + 1
        ds.Rows = ds.Columns = TILE
        ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = lw, lh
        ds.NumberOfFrames = len(frames)
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.ImagedVolumeWidth = width * 0.00025
        ds.ImagedVolumeHeight = height * 0.00025
        if "SharedFunctionalGroupsSequence" in ds:
            try:
                ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [0.00025 * down] * 2
            except (AttributeError, IndexError):
                pass
        ds.PixelData = encapsulate(frames)
        ds["PixelData"].VR = "OB"
        path = folder / f"level{n}.dcm"
        ds.save_as(str(path), enforce_file_format=True)
        first = first or path
    return first


def write_aperio_jpeg(path: Path, width: int, height: int) -> Path:
    from pathology_hub.slides.synthetic import write_synthetic_slide
    return write_synthetic_slide(path, width, height, tissue_fraction=0.45)


def write_kfb_with_twin(folder: Path, width: int, height: int) -> tuple[Path, Path]:
    """KFBio .kfb (the platform's KFB writer, same tissue field) and its twin for vips, which reads
    no KFB: the same pixels as an Aperio JPEG SVS, so vips does the same work on the same image."""
    from pathology_hub.slides.synthetic import write_synthetic_slide
    from pathology_hub.slides.synthetic_formats import write_synthetic_kfb
    kfb = write_synthetic_kfb(folder / "synthetic.kfb", width, height, levels=4, tissue_fraction=0.45, seed=0)
    twin = write_synthetic_slide(folder / "kfb-twin.svs", width, height, tissue_fraction=0.45, seed=0)
    return kfb, twin


def write_ome_16bit(path: Path, width: int, height: int, channels: int = 4) -> Path:
    """A 4-channel 16-bit OME-TIFF (DAPI, FITC, TRITC, Cy5), tiled, with 4x reduced levels as SubIFDs,
    each channel a dim fluorescence-like field (12-bit range) derived from the shared tissue field."""
    downs = _downs(width, height, True)
    gen = _gen(width, height, downs[-1])

    def planes(lw: int, lh: int, down: int) -> Iterator[np.ndarray]:
        for k in range(channels):
            for tile in _tiles(gen, lw, lh, down):
                inverted = 255 - tile[..., k % 3].astype(np.uint16)
                yield (inverted * (4 + 3 * k)).astype(np.uint16)

    meta = {"axes": "CYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325,
            "Channel": {"Name": ["DAPI", "FITC", "TRITC", "Cy5"][:channels]}}
    opts = dict(tile=(TILE, TILE), compression="zlib", photometric="minisblack", maxworkers=2)
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(planes(width, height, 1), shape=(channels, height, width), dtype=np.uint16,
                  subifds=len(downs) - 1, metadata=meta, **opts)
        for down in downs[1:]:
            lw, lh = width // down, height // down
            tif.write(planes(lw, lh, down), shape=(channels, lh, lw), dtype=np.uint16, subfiletype=1, **opts)
    return path


FORMATS = {
    "aperio-jpeg": lambda d, w, h: write_aperio_jpeg(d / "aperio-jpeg.svs", w, h),
    "aperio-jp2k": lambda d, w, h: write_aperio_jp2k(d / "aperio-jp2k.svs", w, h),
    "tiff-deflate-single": lambda d, w, h: write_generic_tiff(d / "deflate-single.tiff", w, h, pyramid=False),
    "tiff-deflate-pyramid": lambda d, w, h: write_generic_tiff(d / "deflate-pyramid.tiff", w, h, pyramid=True),
    "dicom-wsi": lambda d, w, h: write_dicom_wsi(d / "dicom-wsi", w, h),
    "kfb": write_kfb_with_twin,
    "ome-tiff-16bit-4ch": lambda d, w, h: write_ome_16bit(d / "fluo-16bit.ome.tif", w, h),
}


def store_url(explicit: str | None) -> tuple[str, str]:
    if explicit:
        return explicit, "given"
    try:
        out = subprocess.run([str(ROOT / "scripts" / "s3-server"), "env"], capture_output=True,
                             text=True, timeout=30).stdout
        for line in out.splitlines():
            if line.startswith("STORAGE_URL="):
                url = line.split("=", 1)[1].strip().strip("'\"")
                import storage
                storage.open_store(url).ping()
                return url, "s3"
    except Exception as exc:  # noqa: BLE001
        print(f"# S3 server not available ({exc}); benchmarking into a file:// store")
    return f"file://{tempfile.mkdtemp(prefix='bench-store-')}", "file"


# ---------------- contenders (each runs in a child process) ----------------

def _vips_image(slide: str, job: dict):
    """What vips tiles: the file itself, or its twin when vips cannot read the format (KFB); the
    channels of a multichannel file stacked page by page and cast to 8 bits."""
    import pyvips
    if job.get("channels"):
        img = pyvips.Image.new_from_file(slide, n=len(job["channels"]))
        return img.cast("uchar", shift=True)
    return pyvips.Image.new_from_file(job.get("twin") or slide)


@functools.lru_cache(maxsize=None)
def process_store(url: str):
    """The contender process's object store, opened once as a job worker opens its own
    (``pathology_hub.runtime.store()``): its bucket check and pooled connections are paid by the
    warm-up slide, not by every build (a fresh store's bucket check and first connection took
    15-20 ms, more than a 16 x 16 px slide's whole build)."""
    import storage
    return storage.open_store(url)


def run_vips_zip(slide: str, url: str, prefix: str, workers: int, job: dict) -> dict:
    store = process_store(url)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pyr.zip")  # with container="zip" vips writes exactly this file
        img = _vips_image(slide, job)
        img.dzsave(out, tile_size=TILE_SIZE, overlap=OVERLAP, suffix=".jpg[Q=80]", container="zip")
        store.put_file(f"{prefix}/pyramid.zip", out, content_type="application/zip")
    return {}


def run_vips_folder(slide: str, url: str, prefix: str, workers: int, job: dict) -> dict:
    store = process_store(url)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pyr")
        _vips_image(slide, job).dzsave(out, tile_size=TILE_SIZE, overlap=OVERLAP, suffix=".jpg[Q=80]")
        files = [p for p in Path(out + "_files").rglob("*.jpg")]
        with cf.ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda p: store.put_file(f"{prefix}/{p.relative_to(out + '_files')}", str(p),
                                                   content_type="image/jpeg"), files))
    return {"objects": len(files)}


def _dz_worker(args: tuple[str, str, str, list[tuple[int, int, int]]]) -> int:
    import io
    import openslide
    from openslide.deepzoom import DeepZoomGenerator
    slide, url, prefix, addrs = args
    store = process_store(url)
    dz = DeepZoomGenerator(openslide.OpenSlide(slide), TILE_SIZE, OVERLAP, limit_bounds=True)
    for level, col, row in addrs:
        buf = io.BytesIO()
        dz.get_tile(level, (col, row)).convert("RGB").save(buf, "JPEG", quality=80)
        store.put_bytes(f"{prefix}/{level}/{col}_{row}.jpeg", buf.getvalue(), content_type="image/jpeg")
    return len(addrs)


def run_deepzoom(slide: str, url: str, prefix: str, workers: int, job: dict) -> dict:
    import openslide
    from openslide.deepzoom import DeepZoomGenerator
    dz = DeepZoomGenerator(openslide.OpenSlide(slide), TILE_SIZE, OVERLAP, limit_bounds=True)
    addrs = [(lv, c, r) for lv in range(dz.level_count)
             for c in range(dz.level_tiles[lv][0]) for r in range(dz.level_tiles[lv][1])]
    chunks = [addrs[i:i + 256] for i in range(0, len(addrs), 256)]
    # One process per core does the CPU work; a few extra hide PUT latency.
    with mp.get_context("forkserver").Pool(workers * 2) as pool:
        done = sum(pool.imap_unordered(_dz_worker, [(slide, url, prefix, ch) for ch in chunks]))
    return {"tiles": done}


def run_hub(slide: str, url: str, prefix: str, workers: int, job: dict) -> dict:
    from pathology_hub.tiling import build_pyramid
    store = process_store(url)
    if job.get("channels"):  # what the tile job does for a fluorescence slide: one pyramid per channel
        from pathology_hub.domain.slides.processing import build_slide_pyramids  # warm: WARM_IMPORTS
        result = build_slide_pyramids(slide, job["channels"], store, prefix)
    else:
        result = build_pyramid(slide, store, prefix, workers=workers)
    return {"tiles": result.tiles_total, "objects": result.objects_written,
            "first_view_s": round(result.first_view_seconds, 2), "reader": result.source_reader}


CONTENDERS = {"vips-zip": run_vips_zip, "vips-folder": run_vips_folder,
              "deepzoom": run_deepzoom, "hub": run_hub}


#: What each contender's process imports before its clock starts. The platform tiles in a
#: long-lived job worker that imported these for its first slide, and pyvips is imported once per
#: process too; timing the imports would time Python's module loading (pydicom alone: 0.5-1 s
#: cold, through its optional download helper's import of requests), not tiling.
WARM_IMPORTS = {
    "vips-zip": ("storage", "storage.s3", "pyvips"),
    "vips-folder": ("storage", "storage.s3", "pyvips"),
    "deepzoom": ("storage", "storage.s3", "openslide", "openslide.deepzoom"),
    "hub": ("storage", "storage.s3", "pathology_hub.tiling.pipeline", "openslide", "pydicom", "imagecodecs",
            "PIL.ImageCms", "numpy.ma", "pathology_hub.domain.slides.processing"),
}


def _child(name: str, slide: str, url: str, prefix: str, workers: int, job: dict, conn) -> None:
    import importlib
    t_import = time.monotonic()
    for module in WARM_IMPORTS[name]:
        importlib.import_module(module)
    if job.get("warm_slide"):
        # A job worker has tiled slides before this one: its thread pools and libraries are up.
        CONTENDERS[name](job["warm_slide"], url, f"bench/warm/{uuid.uuid4().hex[:8]}", workers, {})
    conn.send("ready")
    conn.recv()  # the parent's memory sampler is running
    t0 = time.monotonic()
    try:
        extra = CONTENDERS[name](slide, url, prefix, workers, job)
        err = None
    except Exception as exc:  # noqa: BLE001
        extra, err = {}, f"{type(exc).__name__}: {exc}"
    wall = time.monotonic() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send({"wall": wall, "rss_mb": rss, "error": err, "imports_s": round(t0 - t_import, 2), **extra})


def measure(name: str, slide: str, url: str, workers: int, job: dict | None = None) -> dict:
    """One contender in its own process. Its memory is sampled from this process: a sampler thread
    inside the child scanned /proc every 50 ms holding the child's GIL, which slowed the
    Python-driven contender (not vips, which works outside the GIL) by up to half on small slides."""
    parent, child = mp.Pipe()
    prefix = f"bench/{name}/{uuid.uuid4().hex[:8]}"
    proc = mp.get_context("forkserver").Process(target=_child, args=(name, slide, url, prefix, workers, job or {},
                                                                      child))
    proc.start()
    assert parent.recv() == "ready"
    with PeakSampler(proc.pid) as sampler:
        parent.send("go")
        out = parent.recv()
    proc.join()
    out["rss_mb"] = max(out["rss_mb"], sampler.peak / 2**20)
    return out


def tile_count(slide: str) -> int:
    from pathology_hub.tiling.source import SlideSource
    src = SlideSource(slide)
    try:
        return src.geometry.tile_count()
    finally:
        src.close()


RESULTS: list[dict] = []


def channels_of(slide: str) -> list[dict]:
    """The channels ingest finds (name, colour, window), through the sandboxed probe as at upload."""
    from pathology_hub.slides import inspect_slide
    return list(inspect_slide(slide).channels)


def vips_twin(slide: str, folder: Path) -> Path | None:
    """None when vips reads ``slide`` at its full size; else a single-level JPEG-tiled TIFF (256 px
    tiles, quality 85) of the same level-0 pixels, read through the platform's reader, for vips to
    tile instead (dzsave builds every level from level 0, so the file's own levels do not matter)."""
    import pyvips
    from pathology_hub.tiling import direct_tiles
    from pathology_hub.tiling.source import SlideSource
    src = SlideSource(slide)
    try:
        w, h = src.geometry.width, src.geometry.height
        try:
            img = pyvips.Image.new_from_file(slide)
            if (img.width, img.height) == tuple(src.slide.dimensions):  # the whole file, bounds or not
                return None
        except pyvips.Error:
            pass

        def tiles() -> Iterator[np.ndarray]:
            for y in range(0, h, TILE):
                row = direct_tiles.read_l0(src, 0, y, w, min(h, y + TILE))
                for x in range(0, w, TILE):
                    tile = np.full((TILE, TILE, 3), 255, np.uint8)
                    part = row[:, x:x + TILE]
                    tile[:part.shape[0], :part.shape[1]] = part
                    yield tile
        out = folder / (Path(slide).stem + "-vips-twin.tiff")
        tifffile.imwrite(out, tiles(), shape=(h, w, 3), dtype=np.uint8, tile=(TILE, TILE), compression="jpeg",
                         compressionargs={"level": 85}, photometric="rgb", metadata=None, maxworkers=2,
                         bigtiff=w * h * 3 > 2**31)
        return out
    finally:
        src.close()


def bench_slide(slide: str, url: str, workers: int, names: list[str], label: str | None = None,
                twin: str | None = None, tmp: Path | None = None, warm_slide: str | None = None) -> None:
    tiles = tile_count(slide)
    label = label or os.path.basename(slide)
    channels = channels_of(slide)
    if twin is None and not channels and tmp is not None:
        made = vips_twin(slide, tmp)
        twin = str(made) if made else None
    job = {"twin": twin, "channels": channels, "warm_slide": warm_slide}
    if twin or job["channels"]:
        names = [n for n in names if n != "deepzoom"]  # OpenSlide reads neither KFB nor the channels
    extra = f", vips tiles its twin {os.path.basename(twin)}" if twin else ""
    extra += f", {len(job['channels'])} channel pyramids" if job["channels"] else ""
    print(f"\n## {label}  ({tiles} Deep Zoom tiles{extra})")
    print(f"{'contender':<12} {'wall s':>8} {'tiles/s':>9} {'peak RSS MB':>12} {'wall vs vips-zip':>17}  notes")
    base = None
    for name in names:
        r = measure(name, slide, url, workers, job)
        if name == "vips-zip" and not r["error"]:
            base = r["wall"]
        ratio = f"{base / r['wall']:.2f}x faster" if base and name != "vips-zip" else ""
        notes = {k: v for k, v in r.items() if k not in ("wall", "rss_mb")}
        print(f"{name:<12} {r['wall']:8.3f} {tiles / r['wall']:9.0f} {r['rss_mb']:12.0f} {ratio:>17}  "
              f"{json.dumps(notes)}", flush=True)
        RESULTS.append({"slide": label, "contender": name, "wall": r["wall"], "rss_mb": r["rss_mb"],
                        "vs_vips": (base / r["wall"]) if base and name != "vips-zip" else None})


def fixed_cost(url: str, tmp: Path, runs: int = 5) -> str:
    """Wall time of a whole build of a one-tile-ish slide in a warm process: the cost every slide pays."""
    import statistics
    import storage
    from pathology_hub.slides.synthetic import write_synthetic_slide
    from pathology_hub.tiling import build_pyramid
    path = write_synthetic_slide(tmp / "tiny.svs", 600, 400, levels=1)
    store = storage.open_store(url)
    build_pyramid(str(path), store, f"bench/fixed/{uuid.uuid4().hex[:8]}", workers=2)  # warm imports
    walls = []
    for _ in range(runs):
        t0 = time.monotonic()
        build_pyramid(str(path), store, f"bench/fixed/{uuid.uuid4().hex[:8]}", workers=2)
        walls.append(time.monotonic() - t0)
    print(f"\n## fixed cost per slide (600 x 400, warm process, {runs} runs): median "
          f"{statistics.median(walls):.3f} s, max {max(walls):.3f} s (target <= 0.3 s)")
    return str(path)


def big_first_view(url: str, workers: int, tmp: Path) -> None:
    """First-view time and peak RSS on a lazily generated 100k x 100k slide."""
    from pathology_hub.slides.synthetic import write_synthetic_slide
    path = tmp / "big100k.svs"
    t0 = time.monotonic()
    write_synthetic_slide(path, 100_000, 100_000)
    print(f"\n## 100,000 x 100,000 synthetic generated in {time.monotonic() - t0:.0f} s")
    r = measure("hub", str(path), url, workers)
    print(f"hub: wall {r['wall']:.0f} s, first view {r.get('first_view_s')} s, peak RSS {r['rss_mb']:.0f} MB, "
          f"{r.get('objects')} objects, error={r['error']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true", help="also run the 100k x 100k first-view/RSS check")
    ap.add_argument("--skip-slow", action="store_true", help="skip vips-folder and deepzoom")
    ap.add_argument("--store", help="object store URL (default: scripts/s3-server env)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--no-real", action="store_true", help="skip ../shared/slides")
    ap.add_argument("--size", default="20000x15000", help="synthetic slide size, WxH")
    ap.add_argument("--formats", default=",".join(FORMATS), help="synthetic formats to run")
    args = ap.parse_args()
    url, kind = store_url(args.store)
    width, height = (int(v) for v in args.size.lower().split("x"))
    print(f"# store: {kind} ({url.split('@')[-1]}), workers={args.workers}, cores={os.cpu_count()}, "
          f"tiles {TILE_SIZE}/{OVERLAP}, load {os.getloadavg()[0]:.1f}")
    names = ["vips-zip", "hub"] if args.skip_slow else ["vips-zip", "vips-folder", "deepzoom", "hub"]
    with tempfile.TemporaryDirectory(prefix="bench-tiling-") as tmp:
        warm = fixed_cost(url, Path(tmp))
        for fmt in filter(None, args.formats.split(",")):
            t0 = time.monotonic()
            made = FORMATS[fmt](Path(tmp), width, height)
            path, twin = made if isinstance(made, tuple) else (made, None)
            print(f"# {fmt} {width} x {height} generated in {time.monotonic() - t0:.1f} s", flush=True)
            bench_slide(str(path), url, args.workers, names, label=f"{fmt} {width}x{height}",
                        twin=str(twin) if twin else None, tmp=Path(tmp), warm_slide=warm)
        if SHARED.is_dir() and not args.no_real:
            for p in sorted(SHARED.iterdir()):
                if p.is_file() and p.suffix in {".svs", ".ndpi", ".dcm", ".tiff"} and not p.name.endswith("_1.dcm"):
                    bench_slide(str(p), url, args.workers, names, tmp=Path(tmp), warm_slide=warm)
        if args.big:
            big_first_view(url, args.workers, Path(tmp))
    print("\n# summary (hub vs vips-zip, same run)")
    for r in RESULTS:
        if r["contender"] == "hub":
            vs = f"{r['vs_vips']:.2f}x" if r["vs_vips"] else "n/a"
            print(f"{r['slide']:<45} hub {r['wall']:7.3f} s  {r['rss_mb']:6.0f} MB  vs vips-zip {vs}")


if __name__ == "__main__":
    main()
