"""Process-wide handles (settings, object store) shared by web, CLI and worker.

Kept outside Flask so the worker and domain services can reach the store
without an application context.
"""

from __future__ import annotations

from .config import Settings

_settings: Settings | None = None
_store = None


def init(settings: Settings) -> None:
    global _settings, _store
    _settings = settings
    _store = None


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
