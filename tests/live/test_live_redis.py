"""Fan-out through Redis: two hubs (two web processes) and two app instances share one session."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import threading
import uuid
from pathlib import Path

import pytest

from pathology_hub.domain.live_hub import RedisHub
from tests.conftest import require
from tests.live.test_live_access import consultation  # noqa: F401 - shared fixture

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        started = subprocess.run([str(ROOT / "scripts" / "redis-server"), "start"], capture_output=True, text=True)
        url = started.stdout.strip() if started.returncode == 0 else None
    require(bool(url), "no Redis server (scripts/redis-server start failed)")
    return url.rsplit("/", 1)[0] + "/7"   # a database of its own (the queue tests use 0)


def test_two_hubs_share_messages_and_state(redis_url):
    a, b = RedisHub(redis_url), RedisHub(redis_url)
    channel = f"test:{uuid.uuid4().hex}"
    try:
        on_b = b.subscribe(channel)
        a.update(channel, 1, lambda s: s.join(10, "A", "pathologist"))
        b.update(channel, 1, lambda s: s.join(11, "B", "technician"))   # b sees a's participant
        a.presenter_says(channel, 1, lambda s: s.set_view(10, {"x": 0.25}))
        assert b.state(channel, 1).view == {"x": 0.25}
        got = [on_b.get(2.0) for _ in range(3)]
        assert [m["type"] for m in got] == ["state", "state", "view"]
        assert [p["userId"] for p in got[1]["participants"]] == [10, 11]
        assert got[2]["view"] == {"x": 0.25}
        assert b.state(channel, 1).presenter_id == 10
        b.update(channel, 1, lambda s: s.leave(10))
        assert a.state(channel, 1).presenter_id == 11
    finally:
        a.redis.delete(a.PREFIX + "state:" + channel, a.PREFIX + "view:" + channel)
        a.close()
        b.close()


def _serve(application):
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", 0, application, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.slow
def test_two_app_instances_fan_out_through_redis(settings, redis_url, world, client_for, consultation):  # noqa: F811
    import simple_websocket

    from pathology_hub.app import create_app
    apps = [create_app(dataclasses.replace(settings, live_redis_url=redis_url), TESTING=True) for _ in range(2)]
    hub = apps[0].extensions["live_hub"]
    hub.redis.delete(hub.PREFIX + f"state:consultation:{consultation}")   # nothing left from an earlier run
    servers = [_serve(a) for a in apps]
    try:
        def connect(i, username):
            cookie = client_for(username).http.get_cookie("ph_session").value
            return simple_websocket.Client.connect(
                f"ws://127.0.0.1:{servers[i].server_port}/consultations/{consultation}/live",
                headers={"Cookie": f"ph_session={cookie}"})
        presenter = connect(0, "pathologist")
        assert json.loads(presenter.receive(timeout=5))["type"] == "hello"
        follower = connect(1, "tech")
        hello = json.loads(follower.receive(timeout=5))
        assert hello["state"]["presenterId"] != hello["me"]
        presenter.send(json.dumps({"type": "view", "view": {"slideId": 1, "x": 0.125, "y": 0.5}}))
        seen = []
        for _ in range(5):
            m = json.loads(follower.receive(timeout=5))
            seen.append(m["type"])
            if m["type"] == "view":
                assert m["view"] == {"slideId": 1, "x": 0.125, "y": 0.5}
                break
        assert "view" in seen, seen
        presenter.close()
        follower.close()
    finally:
        for s in servers:
            s.shutdown()
        for a in apps:
            a.extensions["live_hub"].close()
