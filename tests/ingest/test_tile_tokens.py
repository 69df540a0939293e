"""Tile tokens: bound to slide, pyramid version and login session; they expire."""

from __future__ import annotations

from pathology_hub.domain.tile_access import check_token, make_token

SECRET = "s3cret"
UID = "a" * 32


def test_token_is_bound_to_session_slide_and_version():
    token = make_token(SECRET, UID, 1, "session-A", now=1000)
    assert check_token(SECRET, token, UID, 1, "session-A", now=1001)
    assert not check_token(SECRET, token, UID, 1, "session-B", now=1001)   # copied into another browser
    assert not check_token(SECRET, token, UID, 1, None, now=1001)          # no session at all
    assert not check_token(SECRET, token, "b" * 32, 1, "session-A", now=1001)
    assert not check_token(SECRET, token, UID, 2, "session-A", now=1001)   # re-tiled pyramid
    assert not check_token("other-secret", token, UID, 1, "session-A", now=1001)


def test_token_expires_and_rejects_garbage():
    token = make_token(SECRET, UID, 1, "s", now=1000, ttl=60)
    assert check_token(SECRET, token, UID, 1, "s", now=1059)
    assert not check_token(SECRET, token, UID, 1, "s", now=1061)
    for bad in ("", "nodot", "x.y", "99999999999.", token + "x", token.replace(".", ".A", 1)):
        assert not check_token(SECRET, bad, UID, 1, "s", now=1000)
