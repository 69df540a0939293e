"""Build a slide's Deep Zoom pyramid into object storage.

Order of work, chosen for the viewer: shared blank tiles, the coarse levels
(DeepZoomGenerator tiles from the slide's own low levels - a few dozen tiles),
thumbnail and associated images, then a *preview* manifest so the first view
works within seconds; then the level-0 blocks on a process pool (each worker
opens the slide once and returns finished packs; the parent uploads them on a
thread pool); the final manifest is written last, so a reader never takes a
half-built pyramid for a complete one.

Crash safety: every pack's bytes are a deterministic function of the slide and
the quality, and each is written atomically under a fixed key. A re-run lists
the prefix (or trusts a :class:`Checkpoint`), skips packs that exist, and ends
byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from pathology_hub.slides.readers import parallel, shared_reads
from pathology_hub.slides.readers.parallel import thread_map
from storage.base import ObjectStore
from storage.keys import validate_key

from .geometry import BLOCK_TILES, FINE_LEVELS
from . import layout
from .layout import FORMAT, MANIFEST, PREVIEW_MANIFEST, block_key, top_key  # noqa: F401 - importable from here as before
from .pack import PackInfo, build_pack, read_pack_info
from .render import (DEFAULT_QUALITY, Mosaic, blank_jpeg, block_piece, derived_levels, mosaic_depth,
                     reduce2, render_block, render_coarse, render_derived,
                     render_scanner_coarse, thumbnail_depth)
from .source import SlideSource, encode_png
from .threads import TaskGroup, shared_pool

_COARSE_SERIAL_MAX = 64  # coarse tiles rendered in the parent; above this they go to the workers
_COARSE_CHUNK = 8        # coarse tiles per worker task
#: Less level-0 work than this many whole blocks is rendered in the calling process: starting a
#: process pool (forkserver, a fresh interpreter that imports OpenSlide, NumPy and the slide:
#: ~0.3-0.5 s) costs more than a one-block slide's whole build (~0.2 s, bench/tiling.py "fixed
#: cost"), and blocks are weighed by area: the TCGA JPEG 2000 slide (4,443 px wide) has one whole
#: block and a 347 px sliver, and a pool made it 5.6 s against 3.8 s in one process, whose
#: decoding, colour work and encoding run on threads anyway (slides.readers.parallel). A
#: 48 Mpx four-channel OME-TIFF (2.9 blocks): 3.4 s in one process, 3.8-5.0 s with a pool; a
#: 300 Mpx DICOM series (18 blocks): 10.4 s in one process, 8-9 s with one.
POOL_MIN_BLOCKS = 4


@dataclass(frozen=True)
class Progress:
    """Reported after each stored pack; ``eta_seconds`` is None until a rate is known."""

    phase: str  # "preview", "levels" or "done"
    tiles_done: int
    tiles_total: int
    level: int | None
    elapsed_seconds: float
    eta_seconds: float | None


@dataclass
class Checkpoint:
    """Packs already known to be stored (key -> PackInfo). Without one, the prefix is listed."""

    packs: dict[str, PackInfo] = field(default_factory=dict)

    def record(self, info: PackInfo) -> None:
        self.packs[info.key] = info


@dataclass(frozen=True)
class PyramidResult:
    manifest_key: str
    width: int
    height: int
    levels: int
    tiles_total: int
    tiles_blank: int
    packs_written: int
    packs_skipped: int
    objects_written: int
    seconds: float
    first_view_seconds: float
    source_reader: str


# --- worker side: one open slide per process ---

_worker_source: SlideSource | None = None
_worker_companions: list[SlideSource] = []


def _worker_init(slide_path: str, owner_pid: int | None = None, companion_paths: tuple[str, ...] = ()) -> None:
    global _worker_source, _worker_companions
    if owner_pid is not None:
        _die_with_owner(owner_pid)
    parallel.run_inline()
    _worker_source = SlideSource(slide_path)
    _worker_companions = [SlideSource(path) for path in companion_paths]
    if companion_paths:
        shared_reads.enable(SHARED_READ_BYTES)


def _die_with_owner(owner_pid: int) -> None:
    """Exit as soon as the process that built the pool dies, even by SIGKILL (no cleanup runs there).

    A killed job worker otherwise leaves its tiling processes (~280 MB each) behind for good.
    Two guards: PR_SET_PDEATHSIG (SIGKILL when our parent dies: the job process with
    ``fork``, the forkserver with ``forkserver``), and a thread waiting on a pidfd of
    the owner itself, since the forkserver may outlive it.
    """
    import signal
    import threading
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass
    try:
        pidfd = os.pidfd_open(owner_pid)
    except ProcessLookupError:
        os._exit(1)  # the owner died before we started
    except (AttributeError, OSError):
        return  # not Linux >= 5.3: PR_SET_PDEATHSIG alone

    def watch() -> None:
        import select
        select.select([pidfd], [], [])  # readable once the owner has exited
        os._exit(1)
    threading.Thread(target=watch, name="owner-watch", daemon=True).start()


BlockResult = tuple[bytes, PackInfo, "np.ndarray | None", list[tuple[str, bytes]]]


def _block(source: SlideSource, bx: int, by: int, key: str, quality: int, piece_depth: int | None,
           companions: Sequence[tuple[SlideSource, str | None]] = ()) -> BlockResult:
    """One block's pack, its piece of the mosaic when the coarse levels or thumbnail need one, and
    the same block's pack of each companion with a key (rendered right after, from shared reads)."""
    piece: dict = {}
    data, info = build_pack(key, render_block(source, bx, by, quality, piece, piece_depth))
    extra = [(ckey, build_pack(ckey, render_block(csource, bx, by, quality))[0])
             for csource, ckey in companions if ckey is not None]
    return data, info, piece.get("pixels"), extra


def _worker_block(bx: int, by: int, key: str, quality: int, piece_depth: int | None = None,
                  companion_keys: Sequence[str | None] = ()) -> BlockResult:
    assert _worker_source is not None
    return _block(_worker_source, bx, by, key, quality, piece_depth, list(zip(_worker_companions, companion_keys)))


def _worker_ready() -> None:
    """A no-op that makes the pool start a worker (which opens the slide) ahead of the blocks."""


def _worker_piece(bx: int, by: int, piece_depth: int) -> "np.ndarray":
    assert _worker_source is not None
    return block_piece(_worker_source, bx, by, piece_depth)


def _worker_coarse(tiles: list[tuple[int, int, int]], quality: int) -> list[tuple[int, int, int, bytes | None]]:
    assert _worker_source is not None
    return [(lv, c, r, render_coarse(_worker_source, lv, c, r, quality)) for lv, c, r in tiles]


# --- parent side ---

def _mp_context() -> multiprocessing.context.BaseContext:
    """forkserver: workers do not inherit the caller's threads and locks (web app, job runner).
    It re-imports ``__main__`` from its file, so a main without one (stdin, -c) gets fork."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file and os.path.exists(main_file):
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("fork")


def _blank_object(source: SlideSource, quality: int) -> tuple[bytes, dict[str, list[int]]]:
    """One object holding the blank tile of every size the pyramid uses."""
    body = bytearray()
    table: dict[str, list[int]] = {}
    for w, h in sorted(source.geometry.tile_sizes()):
        data = blank_jpeg((w, h), source.background, quality, source.grey)
        table[f"{w}x{h}"] = [len(body), len(data)]
        body += data
    return bytes(body), table


def build_pyramid(slide_path: str, store: ObjectStore, prefix: str, *, quality: int = DEFAULT_QUALITY,
                  workers: int | None = None, progress: Callable[[Progress], None] | None = None,
                  checkpoint: Checkpoint | None = None,
                  companions: Sequence[tuple[str, str]] = ()) -> PyramidResult:
    """Tile ``slide_path`` into ``store`` under ``prefix`` (e.g. ``pyramids/<uid>/v1``); resumable.

    ``companions``: (path, prefix) of images with this slide's geometry made from the same source
    data (the channels of a fluorescence image beside its composite). Every block this build
    renders is rendered for them too, right after, taking the data this slide's reader decoded
    (:mod:`~pathology_hub.slides.readers.shared_reads`), and stored under their prefixes; a
    ``build_pyramid`` of each companion then finds its blocks stored, as a resumed build does, and
    adds the rest. A companion of another geometry is left to its own build.
    """
    started = time.monotonic()
    prefix = validate_key(prefix.rstrip("/"))
    if not 1 <= quality <= 100:
        raise ValueError("quality must be within 1..100")
    workers = max(1, workers or os.cpu_count() or 1)
    # What an earlier run stored (a resume) is listed while the slide opens: two independent
    # waits of ~2 ms each, most of a tiny slide's build before its first PUT.
    listing = shared_pool("tile-upload", UPLOAD_THREADS).submit(_stored_sizes, store, prefix)
    try:
        source = SlideSource(slide_path)
    except BaseException:
        listing.cancel()
        raise
    opened: list[_Companion] = []
    try:
        for path, cprefix in companions:
            csource = SlideSource(path)
            if csource.geometry != source.geometry:
                csource.close()
                continue
            companion = _Companion(csource, validate_key(cprefix.rstrip("/")), set())
            opened.append(companion)  # (closed below even if the listing fails)
            companion.existing.update(_stored_sizes(store, companion.prefix))
        build = _Build(source, store, prefix, listing.result(), quality, workers, progress, checkpoint, started,
                       opened)
        if not opened:
            return build.run()
        shared_reads.enable(SHARED_READ_BYTES)
        try:
            return build.run()
        finally:
            shared_reads.enable(0)
    finally:
        for companion in opened:
            companion.source.close()
        source.close()


#: Upload threads of a process (shared by its builds, :mod:`.threads`): object stores answer a PUT in
#: milliseconds to tens of milliseconds; eight in flight keep the pack stream ahead of the workers.
UPLOAD_THREADS = 8

#: Bytes of decoded source data a process keeps for the companions of the block it renders: one
#: 4096 x 4096 block of eight 8-bit channels. A channel beyond it is decoded again, no more.
SHARED_READ_BYTES = 160 * 1024 * 1024


@dataclass(frozen=True)
class _Companion:
    source: SlideSource
    prefix: str
    existing: set[str]   # its object keys already stored (a resumed build)

    def key(self, bx: int, by: int) -> str | None:
        """The companion's pack key of block (bx, by), or None when it is stored already."""
        key = block_key(self.prefix, bx, by)
        return None if key in self.existing else key


@dataclass(frozen=True)
class _BlockPlan:
    """The block pass, planned once per build (:meth:`_Build._plan_blocks`)."""
    todo: list[tuple[int, int, str]]          # (bx, by, pack key) still to render
    stored: list[tuple[int, int, PackInfo]]   # stored by an earlier run
    need_piece: list[tuple[int, int]]         # stored, but the mosaic still needs their pixels
    weight: float                             # level-0 area of todo and need_piece, in whole blocks
    serial: bool                              # rendered in this process, not on the pool


def _stored_sizes(store: ObjectStore, prefix: str) -> dict[str, int]:
    """Size of every object already under ``prefix``, by key."""
    return {info.key: info.size for info in store.list(prefix + "/")}


class _Build:
    def __init__(self, source: SlideSource, store: ObjectStore, prefix: str, existing: dict[str, int],
                 quality: int, workers: int,
                 progress: Callable[[Progress], None] | None, checkpoint: Checkpoint | None,
                 started: float, companions: list[_Companion]) -> None:
        self.source, self.store, self.prefix, self.quality = source, store, prefix, quality
        self.companions = companions
        self.workers, self.progress_cb, self.started = workers, progress, started
        self.geom = source.geometry
        self.checkpoint = checkpoint if checkpoint is not None else Checkpoint()
        self.existing = existing
        if self._stale_layout():
            # A build started by a release with another tile layout (254/1 before 256/0): its packs
            # hold other tiles under the same keys, so resuming would mix two layouts. Start over.
            store.delete_prefix(prefix + "/")
            self.existing = {}
            self.checkpoint = Checkpoint()
        self.packs: dict[str, PackInfo] = {}
        self.written = 0
        self.skipped = 0
        self.objects = 0
        self.tiles_total = self.geom.tile_count()
        self.tiles_done = 0
        self.first_view = 0.0
        self.uploads = TaskGroup(shared_pool("tile-upload", UPLOAD_THREADS))
        self._processes: ProcessPoolExecutor | None = None
        self._ahead_tasks = TaskGroup(shared_pool("render-ahead", 1))
        self._ahead: dict[str, Future] = {}
        self._early: list[Future] = []

    def _stale_layout(self) -> bool:
        """Whether a manifest already under the prefix records a tile layout other than ours."""
        for preview in (True, False):
            key = layout.manifest_key(self.prefix, preview=preview)
            if key not in self.existing:
                continue
            try:
                dzi = json.loads(self.store.get_bytes(key))["dzi"]
            except (ValueError, KeyError, TypeError):
                return True  # unreadable: nothing under the prefix can be trusted for a resume
            return (dzi.get("tile_size"), dzi.get("overlap")) != (self.geom.tile_size, self.geom.overlap)
        return False

    def _pool(self) -> ProcessPoolExecutor:
        """The worker processes, started once and shared by the top pack and the blocks."""
        if self._processes is None:
            self._processes = ProcessPoolExecutor(self.workers, mp_context=_mp_context(),
                                                  initializer=_worker_init,
                                                  initargs=(self.source.path, os.getpid(),
                                                            tuple(c.source.path for c in self.companions)))
        return self._processes

    # -- helpers --
    def _put(self, key: str, data: bytes, content_type: str) -> None:
        self.store.put_bytes(key, data, content_type=content_type)
        self.objects += 1

    def _put_early(self, key: str, data: bytes, content_type: str) -> None:
        """Store an object the preview manifest will name, on the upload threads (the blank tiles,
        thumbnail, label and macro are independent: one round trip for all, not one each;
        on a five-tile slide those round trips were most of its build). :meth:`_wait_early` waits
        for them before any manifest names them."""
        self._early.append(self.uploads.submit(self._put, key, data, content_type))

    def _wait_early(self) -> None:
        early, self._early = self._early, []
        for fut in early:
            fut.result()

    def _known(self, key: str) -> PackInfo | None:
        """A pack stored by an earlier (maybe killed) run, with its index location."""
        if key in self.checkpoint.packs:
            return self.checkpoint.packs[key]
        if key in self.existing:
            info = read_pack_info(self.store, key, self.existing[key])
            if info is not None:
                self.checkpoint.record(info)
            return info
        return None

    def _report(self, phase: str, level: int | None) -> None:
        if self.progress_cb is None:
            return
        elapsed = time.monotonic() - self.started
        rate = self.tiles_done / elapsed if elapsed > 0 else 0
        eta = (self.tiles_total - self.tiles_done) / rate if rate > 0 else None
        self.progress_cb(Progress(phase, self.tiles_done, self.tiles_total, level, elapsed, eta))

    def _pack_done(self, name: str, info: PackInfo, fresh: bool) -> None:
        self.packs[name] = info
        self.checkpoint.record(info)
        self.tiles_done += info.tiles
        if fresh:
            self.written += 1
        else:
            self.skipped += 1

    # -- phases --
    def run(self) -> PyramidResult:
        """Build; whatever happens (a storage outage mid-build), no worker process or queued upload outlives it."""
        try:
            return self._run()
        finally:
            if self._processes is not None:
                self._processes.shutdown(wait=True, cancel_futures=True)
            self._ahead_tasks.cancel()
            self.uploads.cancel()

    def _run(self) -> PyramidResult:
        blank_key = layout.blank_key(self.prefix)
        blank_data, self.blank_table = _blank_object(self.source, self.quality)
        if blank_key not in self.existing:
            self._put_early(blank_key, blank_data, "application/octet-stream")
        # Coarse levels the slide has no small level for, and a thumbnail it has no small level
        # for, are made from the blocks' pixels after the block pass (as vips does) instead of
        # re-reading the full resolution once per coarse level.
        self.derived = derived_levels(self.source)
        self.piece_depth = mosaic_depth(self.source)
        self.mosaic: Mosaic | None = None
        if self.piece_depth is not None and (self.derived and self._known(top_key(self.prefix)) is None
                                             or thumbnail_depth(self.source) is not None
                                             and layout.thumbnail_key(self.prefix) not in self.existing):
            self.mosaic = Mosaic(self.source, self.piece_depth)
        self._start_blocks()
        one_pass = self._one_pass()
        if not self.derived:
            self._build_top()
        self.extras = self._store_extras()
        if not one_pass:
            self._wait_early()
            self._write_manifest(complete=False)
            self.first_view = time.monotonic() - self.started
            self._report("preview", min(self.geom.coarse_levels, default=None))
        try:
            self._build_blocks()
            if self.mosaic is not None:
                self._store_thumbnail(self.mosaic)
            if self.derived:
                self._build_top()
        finally:
            if self._processes is not None:
                self._processes.shutdown(wait=True, cancel_futures=True)
        self._wait_early()
        self.uploads.wait()
        manifest_key = self._write_manifest(complete=True)
        if one_pass:  # the first view is the whole pyramid
            self.first_view = time.monotonic() - self.started
            self._report("preview", min(self.geom.coarse_levels, default=None))
        preview_key = layout.manifest_key(self.prefix, preview=True)
        if not one_pass or preview_key in self.existing:  # (one left by an earlier, killed run)
            try:
                self.store.delete(preview_key)
            except Exception:  # noqa: BLE001 - a stale preview is harmless once the final manifest exists
                pass
        self._report("done", self.geom.max_level)
        blank = sum(p.blank for p in self.packs.values())
        return PyramidResult(manifest_key, self.geom.width, self.geom.height, self.geom.level_count,
                             self.tiles_total, blank, self.written, self.skipped, self.objects,
                             time.monotonic() - self.started, self.first_view, self.source.reader_kind)

    def _build_top(self) -> None:
        levels = self.geom.coarse_levels
        if not levels:
            return
        key = top_key(self.prefix)
        info = self._known(key)
        if info is not None:
            self._pack_done("top", info, False)
            return
        order = [(level, col, row) for level in levels
                 for row in range(self.geom.level_tiles(level)[1])
                 for col in range(self.geom.level_tiles(level)[0])]
        rendered: dict[tuple[int, int, int], bytes | None] = {}
        if self.derived:
            assert self.mosaic is not None and self.mosaic.filled == len(list(self.geom.iter_blocks()))
            chain = self.mosaic.chain()
            for level in sorted(self.derived, reverse=True):  # finest first: one box step each
                rendered.update(((lv, c, r), data) for lv, c, r, data in
                                render_derived(chain, self.mosaic, self.geom, level, self.quality,
                                                               self.source.background))
        rendered.update(((lv, c, r), data) for lv, c, r, data in
                        render_scanner_coarse(self.source, [lv for lv in levels if lv not in self.derived],
                                              self.quality))
        rest = [addr for addr in order if addr not in rendered]
        if self.workers > 1 and len(rest) > _COARSE_SERIAL_MAX:
            # The first view waits for these tiles; on a 100k x 100k slide they are ~300
            # DeepZoomGenerator reads of 15-100 ms, so they are shared out to the workers
            # (which then go on to the blocks). The pack keeps the canonical order.
            chunks = [rest[i:i + _COARSE_CHUNK] for i in range(0, len(rest), _COARSE_CHUNK)]
            for fut in [self._pool().submit(_worker_coarse, chunk, self.quality) for chunk in chunks]:
                rendered.update({(lv, c, r): data for lv, c, r, data in fut.result()})
        else:
            rendered.update({(lv, c, r): render_coarse(self.source, lv, c, r, self.quality) for lv, c, r in rest})
        data, info = build_pack(key, [(lv, c, r, rendered[(lv, c, r)]) for lv, c, r in order])
        self._put_early(key, data, "application/octet-stream")  # stored before any manifest names it
        self._pack_done("top", info, True)

    def _store_thumbnail(self, mosaic: Mosaic) -> None:
        """The thumbnail from the mosaic, for a slide without a small enough level of its own."""
        key = layout.thumbnail_key(self.prefix)
        if key in self.existing:
            return
        import io
        pixels = mosaic.pixels
        # Box-halve first (in strips, see render.reduce2) while at least twice the size: Pillow
        # would otherwise copy the whole mosaic to RGBX and resample it at full size, the build's
        # largest allocation on a 100k x 100k slide (29 MB mosaic -> +53 MB in the parent).
        while max(pixels.shape[:2]) >= 2 * 1024:
            pixels = reduce2(pixels)
        img = Image.fromarray(pixels)
        img.thumbnail((1024, 1024), Image.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        self._put_early(key, buf.getvalue(), "image/jpeg")  # stored with the top pack, before the manifest

    def _store_extras(self) -> dict:
        thumb_key = layout.thumbnail_key(self.prefix)
        if thumb_key not in self.existing and thumbnail_depth(self.source) is None:
            import io
            buf = io.BytesIO()
            self.source.thumbnail().save(buf, "JPEG", quality=90)
            self._put_early(thumb_key, buf.getvalue(), "image/jpeg")
        assoc = {}
        todo = []
        for name, img in sorted(self.source.associated().items()):
            safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "image"
            key = layout.associated_key(self.prefix, safe)
            if key not in self.existing:
                todo.append((key, img))
            assoc[name] = key
        # PNG encoding (zlib) releases the GIL: label and macro are encoded side by side.
        for (key, _), data in zip(todo, thread_map(lambda item: encode_png(self.source.to_srgb(item[1])), todo)):
            self._put_early(key, data, "image/png")
        return {"thumbnail": thumb_key, "associated": assoc}

    def _one_pass(self) -> bool:
        """Whether the build skips the preview manifest: all its blocks are rendered in this process
        and come to at most one block of area (16 Mpx), so the whole pyramid follows the preview
        within about a block's time. Its objects are then stored together and the final manifest
        follows them: three storage round trips in a row instead of six (a five-tile DICOM file
        spent 30 ms on seven of them), which on a remote object store is most of a small slide."""
        return self.plan.serial and self.plan.weight <= 1

    def _plan_blocks(self) -> _BlockPlan:
        """Which blocks still need rendering, which stored ones only owe the mosaic their piece (a
        resumed build), and whether they all run here or on the process pool: decided once, from
        both lists, so the blocks rendered ahead are the ones the block pass then collects."""
        todo: list[tuple[int, int, str]] = []
        stored: list[tuple[int, int, PackInfo]] = []
        for bx, by in self.geom.iter_blocks():
            key = block_key(self.prefix, bx, by)
            info = self._known(key)
            if info is None:
                todo.append((bx, by, key))
            else:
                stored.append((bx, by, info))
        need_piece = [(bx, by) for bx, by, _ in stored] if self.mosaic is not None else []
        weight = self._blocks_weight([(bx, by) for bx, by, _ in todo] + need_piece)
        # In this process when one core is all there is or the pool would start for little work.
        serial = self.workers == 1 or weight < POOL_MIN_BLOCKS
        return _BlockPlan(todo, stored, need_piece, weight, serial)

    def _start_blocks(self) -> None:
        """Get the block pass going while the preview is made. On a process pool: start the
        workers now, so their start (a fresh interpreter each, ~1-2 s on the first pool of a
        process) overlaps the coarse levels instead of following them. In this process:
        :meth:`_render_ahead`."""
        self.plan = self._plan_blocks()
        if not self.plan.todo and not self.plan.need_piece:
            return
        if not self.plan.serial:
            pool = self._pool()
            for _ in range(self.workers):
                pool.submit(_worker_ready)
        elif self.plan.todo:
            self._render_ahead(self.plan.todo)

    def _render_ahead(self, todo: list[tuple[int, int, str]]) -> None:
        """For a slide rendered in this process, start its blocks on a thread now, while the coarse
        levels and the thumbnail are made from the slide's own levels and the label and macro are
        encoded (independent work; OpenSlide, the decoders and LittleCMS release the GIL). The TCGA
        JPEG 2000 slide spent 1.6 s there with one core idle. Only the rendering runs ahead; storing and bookkeeping stay in
        :meth:`_build_blocks`, in block order."""
        piece_depth = self.piece_depth if self.mosaic is not None else None
        for bx, by, key in todo:
            self._ahead[key] = self._ahead_tasks.submit(_block, self.source, bx, by, key, self.quality, piece_depth,
                                                         self._companions_of(bx, by))

    def _build_blocks(self) -> None:
        todo, need_piece = self.plan.todo, self.plan.need_piece
        for bx, by, info in self.plan.stored:
            self._pack_done(f"b{bx}-{by}", info, False)
        level = max(self.geom.fine_levels)
        piece_depth = self.piece_depth if self.mosaic is not None else None
        if not todo and not need_piece:
            return
        uploads: set[Future] = set()

        def finish(bx: int, by: int, data: bytes, info: PackInfo, piece: np.ndarray | None,
                   extra: list[tuple[str, bytes]]) -> None:
            if self.mosaic is not None and piece is not None:
                self.mosaic.add(bx, by, piece)
            for key, body in [(info.key, data), *extra]:
                uploads.add(self.uploads.submit(self._put, key, body, "application/octet-stream"))
            # A pack counts as done only once stored; failed uploads surface below.
            self._pack_done(f"b{bx}-{by}", info, True)
            self._report("levels", level)

        if self.plan.serial:
            for bx, by in need_piece:
                self.mosaic.add(bx, by, block_piece(self.source, bx, by, self.piece_depth))
            for bx, by, key in todo:
                ahead = self._ahead.pop(key, None)
                finish(bx, by, *(ahead.result() if ahead is not None
                                 else _block(self.source, bx, by, key, self.quality, piece_depth,
                                             self._companions_of(bx, by))))
                self._drain(uploads, limit=16)
        else:
            pool = self._pool()
            pending: dict[Future, tuple[int, int, bool]] = {}
            queue: list[tuple[int, int, str | None]] = list(reversed(todo)) + [(bx, by, None) for bx, by in need_piece]
            while queue or pending:
                while queue and len(pending) < self.workers * 2:
                    bx, by, key = queue.pop()
                    if key is None:
                        pending[pool.submit(_worker_piece, bx, by, self.piece_depth)] = (bx, by, False)
                    else:
                        pending[pool.submit(_worker_block, bx, by, key, self.quality, piece_depth,
                                            [c.key(bx, by) for c in self.companions])] = (bx, by, True)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    bx, by, is_block = pending.pop(fut)
                    if is_block:
                        finish(bx, by, *fut.result())  # a TilingError from a worker re-raises here
                    else:
                        self.mosaic.add(bx, by, fut.result())
                self._drain(uploads, limit=16)
        self._drain(uploads, limit=0)

    def _companions_of(self, bx: int, by: int) -> list[tuple[SlideSource, str | None]]:
        return [(c.source, c.key(bx, by)) for c in self.companions]

    def _blocks_weight(self, blocks: list[tuple[int, int]]) -> float:
        """The blocks' level-0 area, counted in whole blocks."""
        span = self.geom.block_span
        area = 0
        for bx, by in blocks:
            x0, y0, x1, y1 = self.geom.block_region(bx, by)
            area += (x1 - x0) * (y1 - y0)
        return area / (span * span)

    @staticmethod
    def _drain(uploads: set[Future], limit: int) -> None:
        """Bound memory held by queued uploads and surface upload errors early."""
        while len(uploads) > limit:
            done, _ = wait(uploads, return_when=FIRST_COMPLETED)
            for fut in done:
                uploads.discard(fut)
                fut.result()

    def _write_manifest(self, complete: bool) -> str:
        g, s = self.geom, self.source
        available = sorted({lv for lv in g.coarse_levels if "top" in self.packs} |
                           (set(g.fine_levels) if complete else set()))
        manifest = {
            "format": FORMAT,
            "complete": complete,
            "dzi": {"format": "jpeg", "tile_size": g.tile_size, "overlap": g.overlap,
                    "width": g.width, "height": g.height},
            "levels": [{"level": lv, "width": w, "height": h, "cols": g.level_tiles(lv)[0],
                        "rows": g.level_tiles(lv)[1]} for lv, (w, h) in enumerate(g.level_dimensions)],
            "levels_available": available,
            "quality": self.quality,
            "bounds": {"x": s.bounds.x, "y": s.bounds.y, "width": s.bounds.width, "height": s.bounds.height},
            "background": "#%02x%02x%02x" % s.background,
            "colour": {"source_icc_profile": s.icc, "tiles": "sRGB"},
            "layout": {"block_tiles": BLOCK_TILES, "fine_levels": FINE_LEVELS,
                       "coarse_levels": g.coarse_levels, "fine": g.fine_levels,
                       "rule": "coarse level -> packs['top']; fine level L at depth d=max_level-L: "
                               "tile (c, r) -> packs['b{c*2**d//16}-{r*2**d//16}']"},
            "blank": {"key": layout.blank_key(self.prefix), "tiles": self.blank_table},
            "packs": {name: info.to_json() for name, info in sorted(self.packs.items())},
            "source": {"vendor": s.vendor, "reader": s.reader_kind,
                       "dimensions": list(s.slide.dimensions)},
            **self.extras,
        }
        key = layout.manifest_key(self.prefix, preview=not complete)
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        self._put(key, data, "application/json")
        return key
