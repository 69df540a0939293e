"""Fan-out of live-session messages between connections, processes and machines.

Each consultation's session is one channel. A connection subscribes to its channel and reads
messages from a queue; publishing puts a message in every subscriber's queue. The embedded
default (:class:`LocalHub`) does that inside one process. With Redis configured
(:class:`RedisHub`), a message is published to Redis and one listener thread per process
delivers what arrives to that process's subscribers, so two web processes (or machines) see
the same session. The session state (domain/live.py) is kept next to the channel: in a dict
for the local hub, and in a Redis key for the Redis hub, so a process that has never seen the
session picks it up where the others left it.

Every state change happens under the channel's lock (a threading lock, or a Redis lock across
processes) as read-modify-write-publish, so two processes cannot hand control to two people.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from .live import LiveSession

log = logging.getLogger(__name__)

#: How many undelivered messages one slow subscriber may pile up before it is dropped
#: (a reader that stopped reading must not grow memory without bound).
QUEUE_LIMIT = 512
STATE_TTL_SECONDS = 12 * 3600


class Subscription:
    """One connection's inbox on one channel."""

    def __init__(self, hub: "LocalHub", channel: str) -> None:
        self.hub, self.channel = hub, channel
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=QUEUE_LIMIT)
        self.closed = False

    def deliver(self, message: dict[str, Any]) -> None:
        try:
            self.inbox.put_nowait(message)
        except queue.Full:
            log.warning("live subscriber too slow, dropped", extra={"channel": self.channel})
            self.close()

    def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next message, or None after ``timeout`` seconds or once closed."""
        if self.closed and self.inbox.empty():
            return None
        try:
            return self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.hub._unsubscribe(self)
            try:
                self.inbox.put_nowait(None)   # wake a reader blocked in get()
            except queue.Full:
                pass


class LocalHub:
    """In-process fan-out: the embedded default for one web process."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}
        self._states: dict[str, dict[str, Any]] = {}
        self._guard = threading.Lock()
        self._locks: dict[str, threading.RLock] = {}

    # ---------------------------------------------------------------- channel
    def subscribe(self, channel: str) -> Subscription:
        sub = Subscription(self, channel)
        with self._guard:
            self._subs.setdefault(channel, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._guard:
            subs = self._subs.get(sub.channel)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[sub.channel]

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        self._deliver_local(channel, message)

    def _deliver_local(self, channel: str, message: dict[str, Any]) -> None:
        with self._guard:
            subs = list(self._subs.get(channel, ()))
        for sub in subs:
            sub.deliver(message)

    def subscriber_count(self, channel: str) -> int:
        with self._guard:
            return len(self._subs.get(channel, ()))

    # ---------------------------------------------------------------- state
    @contextmanager
    def _locked(self, channel: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(channel, threading.RLock())
        with lock:
            yield

    def _load(self, channel: str) -> dict[str, Any] | None:
        return self._states.get(channel)

    def _store(self, channel: str, snapshot: dict[str, Any]) -> None:
        if snapshot.get("participants"):
            self._states[channel] = snapshot
        else:
            self._states.pop(channel, None)   # nobody left: the session ends

    def update(self, channel: str, consultation_id: int,
               change: Callable[[LiveSession], list[dict[str, Any]]]) -> tuple[LiveSession, list[dict[str, Any]]]:
        """Apply ``change`` to the channel's session under its lock, store and publish what it says."""
        with self._locked(channel):
            data = self._load(channel)
            session = LiveSession.from_snapshot(data) if data else LiveSession(consultation_id)
            messages = change(session)
            if any(m.get("type") == "state" for m in messages):
                self._store(channel, session.snapshot())
            for message in messages:
                self.publish(channel, message)
            return session, messages

    def presenter_says(self, channel: str, consultation_id: int,
                       change: Callable[[LiveSession], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """A view or pointer message: checked against the current state and published without the
        channel lock (they come ~8 times a second while panning and change nothing but the view,
        which is kept apart from the rest of the state so it cannot undo a concurrent join)."""
        session = self.state(channel, consultation_id)
        messages = change(session)
        for message in messages:
            if message.get("type") == "view":
                self._store_view(channel, message["view"])
            self.publish(channel, message)
        return messages

    def _store_view(self, channel: str, view: dict[str, Any]) -> None:
        with self._guard:
            state = self._states.get(channel)
            if state is not None:
                self._states[channel] = {**state, "view": view}

    def state(self, channel: str, consultation_id: int) -> LiveSession:
        data = self._load(channel)
        return LiveSession.from_snapshot(data) if data else LiveSession(consultation_id)

    def close(self) -> None:
        pass


class RedisHub(LocalHub):
    """Fan-out through Redis pub/sub, for several web processes or machines."""

    PREFIX = "pathology-hub:live:"

    def __init__(self, url: str) -> None:
        super().__init__()
        import redis  # the optional dependency is needed only when Redis is configured
        self.redis = redis.Redis.from_url(url)
        self._pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self._pubsub.psubscribe(self.PREFIX + "chan:*")
        self._stop = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="live-redis", daemon=True)
        self._listener.start()

    def _listen(self) -> None:
        prefix = self.PREFIX + "chan:"
        while not self._stop.is_set():
            try:
                item = self._pubsub.get_message(timeout=1.0)
            except Exception:   # Redis restarted: keep trying, the sessions resubscribe by themselves
                log.warning("live redis listener lost its connection", exc_info=True)
                self._stop.wait(1.0)
                continue
            if not item or item.get("type") != "pmessage":
                continue
            channel = item["channel"].decode()[len(prefix):]
            try:
                message = json.loads(item["data"])
            except ValueError:
                continue
            self._deliver_local(channel, message)

    def publish(self, channel: str, message: dict[str, Any]) -> None:
        self.redis.publish(self.PREFIX + "chan:" + channel, json.dumps(message, separators=(",", ":")))

    @contextmanager
    def _locked(self, channel: str) -> Iterator[None]:
        with self.redis.lock(self.PREFIX + "lock:" + channel, timeout=5, blocking_timeout=5, sleep=0.005):
            yield

    def _load(self, channel: str) -> dict[str, Any] | None:
        raw, view = self.redis.mget(self.PREFIX + "state:" + channel, self.PREFIX + "view:" + channel)
        if not raw:
            return None
        state = json.loads(raw)
        if view:
            state["view"] = json.loads(view)
        return state

    def _store_view(self, channel: str, view: dict[str, Any]) -> None:
        self.redis.set(self.PREFIX + "view:" + channel, json.dumps(view, separators=(",", ":")), ex=STATE_TTL_SECONDS)

    def _store(self, channel: str, snapshot: dict[str, Any]) -> None:
        key = self.PREFIX + "state:" + channel
        if snapshot.get("participants"):
            self.redis.set(key, json.dumps(snapshot, separators=(",", ":")), ex=STATE_TTL_SECONDS)
        else:
            self.redis.delete(key, self.PREFIX + "view:" + channel)

    def close(self) -> None:
        self._stop.set()
        self._listener.join(timeout=3)
        try:
            self._pubsub.close()
        finally:
            self.redis.close()


def make_hub(redis_url: str) -> LocalHub:
    """Redis fan-out when a ``redis://`` URL is configured, the in-process hub otherwise."""
    if redis_url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHub(redis_url)
    return LocalHub()
