"""Errors of the tiling engine, each carrying a reason a pathologist's admin can read."""

from __future__ import annotations


class TilingError(Exception):
    """The slide could not be tiled; ``reason`` says why in plain words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TileNotFound(LookupError):
    """The requested tile is not part of the pyramid (bad level/col/row or no pyramid)."""


class TileNotReady(TileNotFound):
    """The tile's level is not stored yet (pyramid still building): render it on demand."""
