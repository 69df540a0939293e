"""Pathology Hub: remote pathology consultation for a tiered medical consortium.

The package root imports nothing: the application factory lives in
:mod:`pathology_hub.app` and the wiring in :mod:`pathology_hub.bootstrap`
(see docs/architecture.md), so a sandboxed probe or a worker never loads Flask.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    """``from pathology_hub import create_app`` keeps working (older scripts); it loads Flask only then."""
    if name == "create_app":
        from .app import create_app
        return create_app
    raise AttributeError(f"module 'pathology_hub' has no attribute {name!r}")
