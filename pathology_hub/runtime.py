"""Process-wide handles (settings, object store) shared by web, CLI and worker.

Kept outside Flask so the worker and domain services can reach the store
without an application context.
"""

from __future__ import annotations

from .config import Settings

_settings: Settings | None = None
_store = None
_pack_cache = None


def init(settings: Settings) -> None:
    global _settings, _store, _pack_cache
    _settings = settings
    _store = None
    _pack_cache = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


def store():
    """The configured :class:`storage.base.ObjectStore`, opened on first use."""
    global _store
    if _store is None:
        from storage import open_store
        _store = open_store(settings().storage_url)
    return _store


def pack_cache():
    """The node's :class:`~pathology_hub.tiling.pack_cache.PackCache`, or None.

    Only a remote store gets one: the local folder already is a disk, and a
    copy of it would only double the bytes.
    """
    global _pack_cache
    cfg = settings()
    if _pack_cache is None and cfg.tile_cache_mb > 0 and not cfg.storage_url.startswith("file://"):
        from pathlib import Path

        from .tiling.pack_cache import PackCache
        directory = Path(cfg.tile_cache_dir) if cfg.tile_cache_dir else cfg.instance_path / "tile-cache"
        _pack_cache = PackCache(store(), directory, cfg.tile_cache_mb << 20)
    return _pack_cache
