"""Peak memory of tiling a single-level slide (issue #19: "under 500 MB for a single-level
100,000 x 100,000 slide"), with the whole process tree counted.

Usage: .venv/bin/python bench/tiling_memory.py [--size 100000] [--anchor 25000] [--tile 512]
                                                [--workers N] [--workdir DIR] [--keep]

For each size (the anchor first, then --size) it writes a single-level JPEG-tiled generic TIFF
(tifffile, tile by tile from a generator, so the writer never holds the image; the pixels come
from the synthetic tissue field of :mod:`pathology_hub.slides.synthetic`: mostly glass with
tissue islands, so the file stays small), then runs ``pathology_hub.tiling.build_pyramid`` into a
file:// store in a child process, exactly as the tiling job does (default workers: cpu count).
A single-level slide has no small level, so every coarse level and the thumbnail come from the
block pass's mosaic: the case the bound is about.

Memory, sampled every 50 ms from /proc while the child runs:
* tree RSS: the largest sum of VmRSS over the child and all its descendants (forkserver,
  pool workers, resource tracker); RSS counts pages shared between processes once per process,
  so this is the conservative figure the budget is checked against;
* tree PSS: the same sum of proportional set size (shared pages split), for comparison;
* per process: each process's own peak (VmHWM, exact up to its last sample) and, from the
  build process itself once its forkserver is reaped, ``ru_maxrss`` of RUSAGE_SELF and of
  RUSAGE_CHILDREN (the largest peak among the pool workers and the forkserver).
Ratios are printed against the 500 MB budget and against the anchor measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

BUDGET_MB = 500
MB = 2**20


# ---------------- the slide ----------------

def write_single_level(path: Path, size: int, tile: int, quality: int = 85) -> Path:
    """A single-level, JPEG-tiled (RGB) generic TIFF of size x size, written tile by tile."""
    from pathology_hub.slides.synthetic import _Generator  # the shared tissue field (read-only use)

    gen = _Generator(size, size, 0.35, 19, tile, max_down=1)
    cols = rows = math.ceil(size / tile)

    def tiles() -> Iterator[np.ndarray]:
        for ty in range(rows):
            for tx in range(cols):
                yield gen.tile_at(1, tx, ty)

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(tiles(), shape=(size, size, 3), dtype=np.uint8, tile=(tile, tile), compression="jpeg",
                  compressionargs={"level": quality}, photometric="rgb", metadata=None, maxworkers=2,
                  resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER")
    return path


# ---------------- memory of a process tree ----------------

def _status(pid: int) -> dict[str, int] | None:
    """PPid, VmRSS and VmHWM (bytes) of one process; None if it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "PPid":
                    out["ppid"] = int(value)
                elif key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        return None
    return out


def _pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the memory of ``root`` and every descendant until stopped."""

    def __init__(self, root: int, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.root, self.every = root, every
        self.peak_rss = self.peak_pss = 0
        self.peak_processes = 0
        self.hwm: dict[int, tuple[str, int]] = {}  # pid -> (name, VmHWM)
        self._halt = threading.Event()

    def _tree(self) -> dict[int, dict[str, int]]:
        procs = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                st = _status(int(name))
                if st is not None and "ppid" in st:
                    procs[int(name)] = st
        children: dict[int, list[int]] = {}
        for pid, st in procs.items():
            children.setdefault(st["ppid"], []).append(pid)
        tree, stack = {}, [self.root]
        while stack:
            pid = stack.pop()
            if pid in procs:
                tree[pid] = procs[pid]
                stack.extend(children.get(pid, []))
        return tree

    def run(self) -> None:
        while not self._halt.is_set():
            tree = self._tree()
            self.peak_rss = max(self.peak_rss, sum(st.get("VmRSS", 0) for st in tree.values()))
            self.peak_pss = max(self.peak_pss, sum(_pss(pid) for pid in tree))
            self.peak_processes = max(self.peak_processes, len(tree))
            for pid, st in tree.items():
                if "VmHWM" in st:
                    role = self.hwm[pid][0] if pid in self.hwm else self._role(pid, tree)
                    self.hwm[pid] = (role, st["VmHWM"])
            self._halt.wait(self.every)

    def _role(self, pid: int, tree: dict[int, dict[str, int]]) -> str:
        if pid == self.root:
            return "parent"
        text = _cmdline(pid)
        if "resource_tracker" in text:
            return "resource tracker"
        if "forkserver" in text:  # the server and the workers it forks share its command line
            return "forkserver" if tree[pid]["ppid"] == self.root else "worker"
        return text[:40] or "?"

    def stop(self) -> None:
        self._halt.set()
        self.join()


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            parts = f.read().split(b"\0")
    except OSError:
        return ""
    return " ".join(p.decode(errors="replace") for p in parts if p)


# ---------------- the measured child ----------------

def child(slide: str, store_dir: str, workers: int) -> None:
    """Runs in its own process: build the pyramid as the tiling job does, print JSON."""
    import storage
    from pathology_hub.tiling import build_pyramid
    store = storage.open_store(f"file://{store_dir}")
    block_pass_rss = [0]

    def progress(p) -> None:  # the build process's own RSS after each stored pack
        if p.phase == "levels":
            block_pass_rss[0] = max(block_pass_rss[0], _status(os.getpid())["VmRSS"])

    t0 = time.monotonic()
    result = build_pyramid(slide, store, "pyramids/bench/v1", workers=workers, progress=progress)
    wall = time.monotonic() - t0
    try:  # reap the forkserver (which reaped the pool workers), so RUSAGE_CHILDREN covers them all
        from multiprocessing import forkserver
        forkserver._forkserver._stop()
    except Exception:  # noqa: BLE001 - not a forkserver pool, or another Python: fewer figures
        pass
    print(json.dumps({"wall_s": wall, "ru_self": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "ru_descendants": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
                      "parent_block_pass_rss": block_pass_rss[0], "tiles_total": result.tiles_total, "tiles_blank": result.tiles_blank,
                      "packs_written": result.packs_written, "objects_written": result.objects_written,
                      "first_view_s": result.first_view_seconds, "levels": result.levels,
                      "reader": result.source_reader}))


def measure(slide: Path, store_dir: Path, workers: int) -> dict:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(slide),
                             str(store_dir), str(workers)], stdout=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid)
    sampler.start()
    out, _ = proc.communicate()
    sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"build_pyramid failed (exit {proc.returncode})")
    res = json.loads(out.strip().splitlines()[-1])
    per = sorted(sampler.hwm.values(), key=lambda nv: -nv[1])
    res.update(peak_tree_rss=sampler.peak_rss, peak_tree_pss=sampler.peak_pss,
               processes=sampler.peak_processes,
               per_process_hwm=[(name, hwm) for name, hwm in per],
               max_process_hwm=max([hwm for _, hwm in per] + [res["ru_self"], res["ru_descendants"]]))
    return res


# ---------------- report ----------------

def _mb(n: float) -> str:
    return f"{n / MB:,.0f} MB"


def run_size(size: int, args: argparse.Namespace, work: Path) -> dict:
    slide = work / f"single-{size}.tiff"
    t0 = time.monotonic()
    if not slide.exists():
        write_single_level(slide, size, args.tile)
    gen_s = time.monotonic() - t0
    store_dir = work / f"store-{size}"
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir(parents=True)
    res = measure(slide, store_dir, args.workers)
    res.update(size=size, file_mb=slide.stat().st_size / MB, generate_s=gen_s,
               mpx_per_s=size * size / 1e6 / res["wall_s"], s_per_gpx=res["wall_s"] / (size * size / 1e9))
    print(f"\n== {size:,} x {size:,} single-level JPEG TIFF ({args.tile} px tiles, {res['file_mb']:,.0f} MB, "
          f"written in {gen_s:.0f} s), {args.workers} workers, reader {res['reader']}")
    print(f"  wall {res['wall_s']:.1f} s   first view {res['first_view_s']:.2f} s   "
          f"{res['mpx_per_s']:.1f} Mpx/s   {res['s_per_gpx']:.1f} s/Gpx")
    print(f"  tiles {res['tiles_total']:,} ({res['tiles_blank']:,} blank), packs {res['packs_written']}, "
          f"objects {res['objects_written']}, levels {res['levels']}")
    print(f"  peak tree RSS {_mb(res['peak_tree_rss'])} ({res['peak_tree_rss'] / MB / BUDGET_MB:.2f} x the "
          f"{BUDGET_MB} MB budget)   peak tree PSS {_mb(res['peak_tree_pss'])}   processes {res['processes']}")
    print("  per-process peak (VmHWM, last sample): " + ", ".join(f"{n} {_mb(h)}" for n, h in res["per_process_hwm"]))
    print(f"  build process RSS during the block pass (after each pack): at most {_mb(res['parent_block_pass_rss'])}")
    print(f"  ru_maxrss: build process {_mb(res['ru_self'])}, largest of its reaped descendants "
          f"{_mb(res['ru_descendants'])}")
    if not args.keep:
        shutil.rmtree(store_dir, ignore_errors=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, help="side of the square slide (default 100000)")
    ap.add_argument("--anchor", type=int, default=25_000, help="anchor size measured first (0: none)")
    ap.add_argument("--tile", type=int, default=512, choices=(256, 512), help="TIFF tile size")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--workdir", help="where the slide and the store go (default: a new dir under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the slides and stores")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="tiling-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(work).free
    print(f"# workdir {work} ({free / 2**30:.0f} GB free), {os.cpu_count()} CPUs")
    sizes = [s for s in (args.anchor, args.size) if s]
    sizes = sorted(set(sizes), key=sizes.index)
    results = []
    try:
        for size in sizes:
            results.append(run_size(size, args, work))
    finally:
        if not args.keep:
            for size in sizes:
                (work / f"single-{size}.tiff").unlink(missing_ok=True)
            if not args.workdir:
                shutil.rmtree(work, ignore_errors=True)
    if len(results) == 2:
        a, b = results
        print(f"\n== {b['size']:,} against the {a['size']:,} anchor (same run)")
        print(f"  pixels x{b['size'] ** 2 / a['size'] ** 2:.0f}   peak tree RSS x{b['peak_tree_rss'] / a['peak_tree_rss']:.2f}"
              f"   max process peak x{b['max_process_hwm'] / a['max_process_hwm']:.2f}"
              f"   time per Gpx x{b['s_per_gpx'] / a['s_per_gpx']:.2f}   first view x"
              f"{b['first_view_s'] / max(a['first_view_s'], 1e-9):.2f}")
    final = results[-1]
    verdict = "within" if final["peak_tree_rss"] <= BUDGET_MB * MB else "OVER"
    print(f"\n{final['size']:,} x {final['size']:,}: peak tree RSS {_mb(final['peak_tree_rss'])} is {verdict} the "
          f"{BUDGET_MB} MB budget")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
