"""Tiling benchmark: vips dzsave vs OpenSlide DeepZoomGenerator vs pathology_hub.tiling, into S3.

Usage: .venv/bin/python bench/tiling.py [--big] [--skip-slow] [--store URL] [--workers N]

Each contender runs in its own child process so peak RSS (ru_maxrss of that child
and its own children) is measured per contender. The S3 URL comes from
``scripts/s3-server env`` (started with ``scripts/s3-server start``); without
it the benchmark falls back to a file:// store and says so.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
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

def run_vips_zip(slide: str, url: str, prefix: str, workers: int) -> dict:
    import pyvips
    import storage
    store = storage.open_store(url)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pyr.zip")  # with container="zip" vips writes exactly this file
        img = pyvips.Image.new_from_file(slide)
        img.dzsave(out, tile_size=254, overlap=1, suffix=".jpg[Q=80]", container="zip")
        store.put_file(f"{prefix}/pyramid.zip", out, content_type="application/zip")
    return {}


def run_vips_folder(slide: str, url: str, prefix: str, workers: int) -> dict:
    import pyvips
    import storage
    store = storage.open_store(url)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "pyr")
        pyvips.Image.new_from_file(slide).dzsave(out, tile_size=254, overlap=1, suffix=".jpg[Q=80]")
        files = [p for p in Path(out + "_files").rglob("*.jpg")]
        with cf.ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda p: store.put_file(f"{prefix}/{p.relative_to(out + '_files')}", str(p),
                                                   content_type="image/jpeg"), files))
    return {"objects": len(files)}


def _dz_worker(args: tuple[str, str, str, list[tuple[int, int, int]]]) -> int:
    import io
    import openslide
    import storage
    from openslide.deepzoom import DeepZoomGenerator
    slide, url, prefix, addrs = args
    store = storage.open_store(url)
    dz = DeepZoomGenerator(openslide.OpenSlide(slide), 254, 1, limit_bounds=True)
    for level, col, row in addrs:
        buf = io.BytesIO()
        dz.get_tile(level, (col, row)).convert("RGB").save(buf, "JPEG", quality=80)
        store.put_bytes(f"{prefix}/{level}/{col}_{row}.jpeg", buf.getvalue(), content_type="image/jpeg")
    return len(addrs)


def run_deepzoom(slide: str, url: str, prefix: str, workers: int) -> dict:
    import openslide
    from openslide.deepzoom import DeepZoomGenerator
    dz = DeepZoomGenerator(openslide.OpenSlide(slide), 254, 1, limit_bounds=True)
    addrs = [(lv, c, r) for lv in range(dz.level_count)
             for c in range(dz.level_tiles[lv][0]) for r in range(dz.level_tiles[lv][1])]
    chunks = [addrs[i:i + 256] for i in range(0, len(addrs), 256)]
    # One process per core does the CPU work; a few extra hide PUT latency.
    with mp.get_context("forkserver").Pool(workers * 2) as pool:
        done = sum(pool.imap_unordered(_dz_worker, [(slide, url, prefix, ch) for ch in chunks]))
    return {"tiles": done}


def run_hub(slide: str, url: str, prefix: str, workers: int) -> dict:
    import storage
    from pathology_hub.tiling import build_pyramid
    result = build_pyramid(slide, storage.open_store(url), prefix, workers=workers)
    return {"tiles": result.tiles_total, "objects": result.objects_written,
            "first_view_s": round(result.first_view_seconds, 2), "reader": result.source_reader}


CONTENDERS = {"vips-zip": run_vips_zip, "vips-folder": run_vips_folder,
              "deepzoom": run_deepzoom, "hub": run_hub}


def _child(name: str, slide: str, url: str, prefix: str, workers: int, conn) -> None:
    t0 = time.monotonic()
    try:
        extra = CONTENDERS[name](slide, url, prefix, workers)
        err = None
    except Exception as exc:  # noqa: BLE001
        extra, err = {}, f"{type(exc).__name__}: {exc}"
    wall = time.monotonic() - t0
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    conn.send({"wall": wall, "rss_mb": rss, "error": err, **extra})


def measure(name: str, slide: str, url: str, workers: int) -> dict:
    parent, child = mp.Pipe()
    prefix = f"bench/{name}/{uuid.uuid4().hex[:8]}"
    proc = mp.get_context("forkserver").Process(target=_child, args=(name, slide, url, prefix, workers, child))
    proc.start()
    out = parent.recv()
    proc.join()
    return out


def tile_count(slide: str) -> int:
    from pathology_hub.tiling.source import SlideSource
    src = SlideSource(slide)
    try:
        return src.geometry.tile_count()
    finally:
        src.close()


def bench_slide(slide: str, url: str, workers: int, names: list[str]) -> None:
    tiles = tile_count(slide)
    print(f"\n## {os.path.basename(slide)}  ({tiles} Deep Zoom tiles)")
    print(f"{'contender':<12} {'wall s':>8} {'tiles/s':>9} {'peak RSS MB':>12} {'wall vs vips-zip':>17}  notes")
    base = None
    for name in names:
        r = measure(name, slide, url, workers)
        if name == "vips-zip" and not r["error"]:
            base = r["wall"]
        ratio = f"{base / r['wall']:.2f}x faster" if base and name != "vips-zip" else ""
        notes = {k: v for k, v in r.items() if k not in ("wall", "rss_mb")}
        print(f"{name:<12} {r['wall']:8.1f} {tiles / r['wall']:9.0f} {r['rss_mb']:12.0f} {ratio:>17}  "
              f"{json.dumps(notes)}", flush=True)


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
    args = ap.parse_args()
    url, kind = store_url(args.store)
    print(f"# store: {kind} ({url.split('@')[-1]}), workers={args.workers}, cores={os.cpu_count()}")
    names = ["vips-zip", "hub"] if args.skip_slow else ["vips-zip", "vips-folder", "deepzoom", "hub"]
    with tempfile.TemporaryDirectory(prefix="bench-tiling-") as tmp:
        from pathology_hub.slides.synthetic import write_synthetic_slide
        t0 = time.monotonic()
        syn = write_synthetic_slide(Path(tmp) / "syn40k.svs", 40_000, 30_000, tissue_fraction=0.45)
        print(f"# synthetic 40,000 x 30,000 generated in {time.monotonic() - t0:.1f} s")
        bench_slide(str(syn), url, args.workers, names)
        shared = ROOT.parent / "shared" / "slides"
        if shared.is_dir() and not args.no_real:
            for p in sorted(shared.iterdir()):
                if p.is_file() and p.suffix in {".svs", ".ndpi", ".dcm", ".tiff"}:
                    bench_slide(str(p), url, args.workers, names)
        if args.big:
            big_first_view(url, args.workers, Path(tmp))


if __name__ == "__main__":
    main()
