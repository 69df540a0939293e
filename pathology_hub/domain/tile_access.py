"""Short-lived tile tokens: authorise tile requests without a database query per tile.

A token is an HMAC over the slide, the pyramid version, an expiry and a digest
of the viewer's login-session token. A tile URL copied into another browser
fails because that browser lacks the session; an expired token falls back to
the full per-request policy check. The token proves which session asked; whether that
session still stands (logout, deactivation) is checked by ``session_liveness``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

# Past it, tiles are served through the full (database) check while the session lives. A token
# never outlives its session by more than a second: the tile paths also ask ``session_liveness``.
TOKEN_TTL_SECONDS = 15 * 60


def _session_digest(session_token: str) -> str:
    return hashlib.sha256(session_token.encode()).hexdigest()[:32]


def _mac(secret: str, slide_uid: str, version: int, expires: int, session_token: str) -> str:
    msg = f"tile|{slide_uid}|{version}|{expires}|{_session_digest(session_token)}".encode()
    digest = hmac.new(secret.encode(), msg, hashlib.sha256).digest()[:20]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_token(secret: str, slide_uid: str, version: int, session_token: str, now: float | None = None,
               ttl: int = TOKEN_TTL_SECONDS) -> str:
    expires = int((now or time.time()) + ttl)
    return f"{expires}.{_mac(secret, slide_uid, version, expires, session_token)}"


def check_token(secret: str, token: str | None, slide_uid: str, version: int, session_token: str | None,
                now: float | None = None) -> bool:
    if not token or not session_token or "." not in token:
        return False
    expires_raw, mac = token.split(".", 1)
    if not expires_raw.isdigit() or int(expires_raw) < (now or time.time()):
        return False
    expected = _mac(secret, slide_uid, version, int(expires_raw), session_token)
    return hmac.compare_digest(expected, mac)
