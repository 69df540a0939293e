"""Object key rules shared by every backend.

Keys arrive from URLs and upload forms, so they are hostile input: one rule set,
checked before any backend sees the key, keeps a key from ever naming a path
outside a LocalStore root and keeps both backends accepting exactly the same keys.
"""

from __future__ import annotations

from .errors import InvalidKey

#: S3's own limit; also comfortably below PATH_MAX for the local backend.
MAX_KEY_BYTES = 1024


def _check_chars(value: str, what: str) -> None:
    if "\\" in value:
        raise InvalidKey(f"{what} {value!r} contains a backslash")
    for ch in value:
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise InvalidKey(f"{what} {value!r} contains a control character (U+{ord(ch):04X})")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"{what} is longer than {MAX_KEY_BYTES} bytes in UTF-8")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidKey(f"{what} {value!r} is not valid Unicode (lone surrogate)") from None
    if value.startswith("/"):
        raise InvalidKey(f"{what} {value!r} is absolute (starts with '/')")


def _check_segment(segment: str, value: str, what: str) -> None:
    if segment == "":
        raise InvalidKey(f"{what} {value!r} has an empty path segment")
    if segment == "..":
        raise InvalidKey(f"{what} {value!r} has a '..' segment")
    if segment.startswith("."):
        # Dot-names are reserved for the stores' own temp files and staging keys.
        raise InvalidKey(f"{what} {value!r} has a segment starting with '.' (reserved)")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe object key, else raise InvalidKey."""
    if not isinstance(key, str):
        raise InvalidKey(f"key must be a str, not {type(key).__name__}")
    if key == "":
        raise InvalidKey("key is empty")
    _check_chars(key, "key")
    for segment in key.split("/"):
        _check_segment(segment, key, "key")
    return key


def validate_prefix(prefix: str) -> str:
    """Like :func:`validate_key` but allows ``""`` and a trailing ``/`` or partial last segment."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"prefix must be a str, not {type(prefix).__name__}")
    if prefix == "":
        return prefix
    _check_chars(prefix, "prefix")
    segments = prefix.split("/")
    for segment in segments[:-1]:
        _check_segment(segment, prefix, "prefix")
    last = segments[-1]
    if last and (last == ".." or last.startswith(".")):
        raise InvalidKey(f"prefix {prefix!r} has a segment starting with '.' (reserved)")
    return prefix


def validate_metadata(metadata: "dict[str, str] | None") -> dict[str, str]:
    """Normalise user metadata the way S3 does (lower-case keys) and enforce S3's limits.

    S3 carries metadata in HTTP headers, so both backends accept only what survives
    that trip: lower-cased token keys, printable ASCII values, 2 KB in total.
    """
    out: dict[str, str] = {}
    for raw_key, value in (metadata or {}).items():
        key = str(raw_key).lower()
        if not key or not all(c.isascii() and (c.isalnum() or c in "-_") for c in key):
            raise InvalidKey(f"metadata key {raw_key!r} must be ASCII letters, digits, '-' or '_'")
        value = str(value)
        if not all(0x20 <= ord(c) < 0x7F for c in value):
            raise InvalidKey(f"metadata value for {raw_key!r} must be printable ASCII")
        out[key] = value
    if sum(len(k) + len(v) for k, v in out.items()) > 2048:
        raise InvalidKey("user metadata is larger than 2 KB")
    return out
