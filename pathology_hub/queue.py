"""The Huey task queue, chosen by ``QUEUE_URL``.

``sqlite:///path`` (the embedded default) needs no server; ``redis://host:port/db``
lets workers run on other machines.  The instance is created at import time
because Huey binds tasks to it when their modules are imported.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from huey import RedisHuey, SqliteHuey
from huey.api import Huey

from .config import PROJECT_ROOT


def make_huey(url: str | None = None) -> Huey:
    url = url or os.environ.get("QUEUE_URL") or ""
    if not url:
        instance = Path(os.environ.get("INSTANCE_PATH", PROJECT_ROOT / "instance"))
        instance.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{instance / 'queue.db'}"
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parsed.path
        if not path.startswith("/"):
            path = "/" + path if url.startswith("sqlite:////") else path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey("pathology-hub", filename=path)
    if parsed.scheme in ("redis", "rediss"):
        return RedisHuey("pathology-hub", url=url)
    raise RuntimeError(f"QUEUE_URL must start with sqlite:/// or redis://, got scheme {parsed.scheme!r}")


def describe(url: str) -> str:
    """The queue URL without credentials, safe for logs and /readyz."""
    p = urlparse(url)
    host = p.hostname or ""
    return f"{p.scheme}://{host}{':' + str(p.port) if p.port else ''}{p.path}"


huey = make_huey()


def ping() -> None:
    """Raise if the queue backend cannot be reached (for /readyz)."""
    storage = huey.storage
    if hasattr(storage, "conn") and hasattr(storage.conn, "ping"):
        storage.conn.ping()
    else:
        storage.queue_size()
