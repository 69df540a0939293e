"""Background tasks run by ``flask worker``.

Each task opens its own database session: the worker has no Flask context.
"""

from __future__ import annotations

import logging

from .queue import huey

log = logging.getLogger("pathology_hub.tasks")


@huey.task()
def ping_task(value: str) -> str:
    """Round-trip check used by /readyz tests and operators to see a worker consume."""
    return f"pong:{value}"
