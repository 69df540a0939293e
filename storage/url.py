"""``STORAGE_URL`` parsing: one string in config picks and configures the backend."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class LocalConfig:
    root: str


@dataclass(frozen=True)
class S3Config:
    endpoint: str  # host:port
    access_key: str
    secret_key: str
    bucket: str
    secure: bool = True
    region: str = "us-east-1"


def parse_storage_url(url: str) -> LocalConfig | S3Config:
    """``file:///abs/path`` or ``s3://ACCESS:SECRET@host:port/bucket?secure=false&region=...``."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError("file storage URL must be file:///absolute/path")
        return LocalConfig(root=unquote(parts.path))
    if parts.scheme == "s3":
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"secure", "region"}
        if unknown:
            raise ValueError(f"unknown s3 storage URL option(s): {', '.join(sorted(unknown))}")
        secure_text = query.get("secure", "true").lower()
        if secure_text not in _TRUE | _FALSE:
            raise ValueError(f"secure must be true or false, not {secure_text!r}")
        bucket = parts.path.strip("/")
        if not parts.hostname or not bucket or "/" in bucket:
            raise ValueError("s3 storage URL must be s3://ACCESS:SECRET@host[:port]/bucket")
        if parts.username is None or parts.password is None:
            raise ValueError("s3 storage URL needs ACCESS:SECRET@ credentials")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        endpoint = f"{host}:{parts.port}" if parts.port else host
        return S3Config(endpoint=endpoint, access_key=unquote(parts.username),
                        secret_key=unquote(parts.password), bucket=bucket,
                        secure=secure_text in _TRUE, region=query.get("region", "us-east-1"))
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r} (use file:// or s3://)")
