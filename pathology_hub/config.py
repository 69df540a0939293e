"""Runtime configuration, read once from environment variables.

Every setting has a safe default so that ``make run`` works with nothing but an
empty ``instance/`` folder: SQLite, a local object folder and a SQLite queue.
"""

from __future__ import annotations

import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GiB = 1 << 30
MiB = 1024 * 1024


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"environment variable {name} must be an integer, got {raw!r}") from exc


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def load_or_create_secret_key(instance: Path) -> str:
    """Keep one random key per deployment so sessions survive restarts.

    The file is created with mode 0600 and is never part of the repository
    (``instance/`` is git-ignored).
    """
    key_file = instance / "secret_key"
    if key_file.exists():
        return key_file.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


@dataclass
class Settings:
    """All tunables in one place; see README "Configuration" for each variable."""

    instance_path: Path
    database_url: str
    storage_url: str
    queue_url: str
    secret_key: str
    max_slide_bytes: int = 20 * GiB
    institution_quota_bytes: int = 2000 * GiB
    upload_expiry_hours: int = 24
    max_preview_bytes: int = 64 * MiB  # the coarse-level preview an uploader sends before the slide
    upload_chunk_bytes: int = 8 << 20
    max_open_uploads_per_user: int = 20       # unfinished uploads one user (or their API tokens) may hold
    upload_storage_retry_after: int = 10      # Retry-After (s) while a finished upload waits for storage
    session_idle_minutes: int = 30
    session_max_hours: int = 12
    login_max_failures: int = 5
    login_lockout_minutes: int = 15
    cookie_secure: bool = False
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    log_level: str = "INFO"
    base_url: str = "http://127.0.0.1:8000"
    smtp_url: str = ""
    sms_webhook_url: str = ""      # frozen-section pages: JSON POST to this URL (an SMS gateway); "" = SMS not configured
    report_signing_key: str = ""   # PEM private key for report PDFs; empty = the embedded default in instance/signing
    report_signing_cert: str = ""  # PEM certificate (chain) matching REPORT_SIGNING_KEY
    tile_cache_dir: str = ""       # local copies of tile packs from a remote store; "" = <instance>/tile-cache
    tile_cache_mb: int = 4096      # bound of that folder; 0 turns the cache off
    verify_rate_limit: str = "30 per minute"   # public report verification lookups per client IP
    ratelimit_storage_uri: str = "memory://"   # rate-limit counters: memory:// (per process) or redis://...
    live_redis_url: str = ""                   # live-session fan-out across processes; "" = in-process (one process)
    cors_allowed_origins: tuple[str, ...] = ()  # external viewers allowed to read IIIF and DICOMweb; () = CORS off
    view_audit_window_seconds: float = 60.0    # slide.viewed entries: one per user, slide and window
    ondemand_tile_wait_seconds: float = 3.0    # how long a tile request waits for a worker to render it
    withdrawn_slide_retention_days: int = 30   # objects of a withdrawn slide are deleted after this many days
    max_json_bytes: int = 1 << 20              # request bodies (JSON and others) of ordinary routes
    max_import_bytes: int = 50 << 20           # GeoJSON annotation import and annotation writes
    max_form_bytes: int = 2 << 20              # browser form posts
    audit_checkpoint_minutes: int = 10         # signed audit checkpoint at least this often (when entries were added)
    audit_checkpoint_entries: int = 1000       # ... or as soon as this many entries were added (0 = time only)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "Settings":
        instance = Path(os.environ.get("INSTANCE_PATH", PROJECT_ROOT / "instance")).resolve()
        instance.mkdir(parents=True, exist_ok=True)
        secret = os.environ.get("SECRET_KEY") or load_or_create_secret_key(instance)
        return cls(
            instance_path=instance,
            database_url=os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'pathology_hub.db'}",
            storage_url=os.environ.get("STORAGE_URL") or f"file://{instance / 'objects'}",
            queue_url=os.environ.get("QUEUE_URL") or f"sqlite:///{instance / 'queue.db'}",
            secret_key=secret,
            max_slide_bytes=_env_int("MAX_SLIDE_BYTES", 20 * GiB),
            institution_quota_bytes=_env_int("INSTITUTION_QUOTA_BYTES", 2000 * GiB),
            upload_expiry_hours=_env_int("UPLOAD_EXPIRY_HOURS", 24),
            max_preview_bytes=_env_int("MAX_PREVIEW_BYTES", 64 * MiB),
            upload_chunk_bytes=_env_int("UPLOAD_CHUNK_MB", 8) << 20,
            max_open_uploads_per_user=_env_int("MAX_OPEN_UPLOADS_PER_USER", 20),
            upload_storage_retry_after=_env_int("UPLOAD_STORAGE_RETRY_AFTER", 10),
            session_idle_minutes=_env_int("SESSION_IDLE_MINUTES", 30),
            session_max_hours=_env_int("SESSION_MAX_HOURS", 12),
            login_max_failures=_env_int("LOGIN_MAX_FAILURES", 5),
            login_lockout_minutes=_env_int("LOGIN_LOCKOUT_MINUTES", 15),
            cookie_secure=_env_bool("COOKIE_SECURE", False),
            argon2_time_cost=_env_int("ARGON2_TIME_COST", 3),
            argon2_memory_kib=_env_int("ARGON2_MEMORY_KIB", 65536),
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            base_url=(os.environ.get("BASE_URL") or f"http://{os.environ.get('BIND', '127.0.0.1:8000')}").rstrip("/"),
            smtp_url=os.environ.get("SMTP_URL", ""),
            sms_webhook_url=os.environ.get("SMS_WEBHOOK_URL", "").strip(),
            report_signing_key=os.environ.get("REPORT_SIGNING_KEY", ""),
            report_signing_cert=os.environ.get("REPORT_SIGNING_CERT", ""),
            tile_cache_dir=os.environ.get("TILE_CACHE_DIR", ""),
            tile_cache_mb=_env_int("TILE_CACHE_MB", 4096),
            verify_rate_limit=os.environ.get("VERIFY_RATE_LIMIT") or "30 per minute",
            ratelimit_storage_uri=os.environ.get("RATELIMIT_STORAGE_URI") or "memory://",
            live_redis_url=os.environ.get("LIVE_REDIS_URL") or _redis_or_empty(os.environ.get("RATELIMIT_STORAGE_URI")),
            cors_allowed_origins=_origins(os.environ.get("CORS_ALLOWED_ORIGINS", "")),
            view_audit_window_seconds=float(_env_int("VIEW_AUDIT_WINDOW_SECONDS", 60)),
            ondemand_tile_wait_seconds=float(_env_int("ONDEMAND_TILE_WAIT_SECONDS", 3)),
            withdrawn_slide_retention_days=_env_int("WITHDRAWN_SLIDE_RETENTION_DAYS", 30),
            max_json_bytes=_env_int("MAX_JSON_BYTES", 1 << 20),
            max_import_bytes=_env_int("MAX_IMPORT_BYTES", 50 << 20),
            max_form_bytes=_env_int("MAX_FORM_BYTES", 2 << 20),
            audit_checkpoint_minutes=_env_int("AUDIT_CHECKPOINT_MINUTES", 10),
            audit_checkpoint_entries=_env_int("AUDIT_CHECKPOINT_ENTRIES", 1000),
        )


def _redis_or_empty(url: str | None) -> str:
    """The live session shares the rate limiter's Redis when that one is configured."""
    return url if url and url.startswith(("redis://", "rediss://")) else ""


def _origins(raw: str) -> tuple[str, ...]:
    """CORS_ALLOWED_ORIGINS: comma-separated origins (scheme://host[:port]). ``*`` is refused: these
    endpoints answer with the user's credentials, and a wildcard would hand them to any web page."""
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if origin == "*" or "://" not in origin or origin.count("/") != 2:
            raise RuntimeError(f"CORS_ALLOWED_ORIGINS: {origin!r} is not an origin like https://viewer.example.org")
    return origins
