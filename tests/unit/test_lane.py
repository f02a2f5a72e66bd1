"""The express lane (bridge/web/lane.py) answers as the Flask route does, and writes the same.

Each request goes to two apps on two fakeredis stores set up alike: one through the lane,
one straight to Flask (the lane's inner app). Status, headers, body and what Redis holds
afterwards must match, event ids and times aside.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import Any

import fakeredis
import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from werkzeug.test import EnvironBuilder

from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.runtime import Runtime
from bridge.storage import Store
from bridge.web import botpress
from bridge.web.lane import MessageLane
from tests.conftest import SECRET
from tests.unit.conftest import Published

USER, CONV = "u_known", "c_known"
PATH = f"/botpress/{SECRET}/botSendsMessage"


class Side:
    """One app on its own store; `lane` is its express lane, `flask` the app behind it."""

    def __init__(self, settings: Settings, server: fakeredis.FakeServer | None = None) -> None:
        self.server = server or fakeredis.FakeServer()
        self.store = Store(fakeredis.FakeRedis(server=self.server, decode_responses=True))
        self.store.redis.hset(self.store.user_key(USER), "name", "Ada")
        self.store.redis.hset(self.store.conv_key(CONV), "status", "open")
        self.published = Published()
        runtime = Runtime(settings, self.store, InboxHelpdesk(settings, self.store), self.published)
        app = create_app(runtime=runtime)
        lane = app.wsgi_app.wsgi_app  # type: ignore[attr-defined]  # inside RequestMetrics
        assert isinstance(lane, MessageLane)
        self.lane = lane
        self.flask_calls = 0
        flask_app = lane.app

        def counted(environ: Any, start_response: Any) -> Iterable[bytes]:
            self.flask_calls += 1
            return flask_app(environ, start_response)

        lane.app = counted
        self.flask = flask_app

    def state(self) -> dict[str, Any]:
        """Everything in Redis, with event ids, event times and pump ids left out."""
        r = self.store.redis
        out: dict[str, Any] = {}
        for key in sorted(r.keys("*")):
            kind = r.type(key)
            if kind == "list":
                out[key] = [_event_shape(v) for v in r.lrange(key, 0, -1)]
            elif kind == "set":
                out[key] = sorted(r.smembers(key))
            elif kind == "zset":
                out[key] = r.zcard(key)  # pump ids and heartbeats are random
            elif kind == "hash":
                out[key] = r.hgetall(key)
            else:
                out[key] = r.get(key)
        return {"redis": out, "pumps started": len(self.published.pumps)}


def _event_shape(raw: str) -> Any:
    try:
        event = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(event, dict):
        event.pop("id", None)
        event.pop("at", None)
    return event


def call(
    app: Any,
    body: bytes,
    *,
    method: str = "POST",
    path: str = PATH,
    length: str | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[str, list[tuple[str, str]], bytes]:
    environ = EnvironBuilder(
        path=path, method=method, data=body, content_type="application/json"
    ).get_environ()
    environ.update(extra or {})
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    if not environ.get("CONTENT_LENGTH"):
        environ.pop("CONTENT_LENGTH", None)
    started: list[Any] = []
    answer = b"".join(
        app(environ, lambda status, headers, exc=None: started.append((status, headers)))
    )
    status, headers = started[0]
    return status, list(headers), answer


@pytest.fixture
def sides(settings: Settings) -> tuple[Side, Side]:
    return Side(settings), Side(settings)


def message(cid: Any = CONV, uid: Any = USER, payload: Any = None, **extra: Any) -> bytes:
    body = {
        "type": "botSendsMessage",
        "remoteConversationId": cid,
        "remoteUserId": uid,
        "payload": {"text": "hello"} if payload is None else payload,
        **extra,
    }
    return json.dumps(body).encode()


def same_answer(sides: tuple[Side, Side], body: bytes, **how: Any) -> Any:
    through_lane, flask_only = sides
    answer = call(through_lane.lane, body, **how)
    assert answer == call(flask_only.flask, body, **how)
    assert through_lane.state() == flask_only.state()
    return answer


def test_a_well_formed_message_is_stored_without_flask(sides: tuple[Side, Side]) -> None:
    status, _, body = same_answer(sides, message())
    assert (status, body) == ("200 OK", botpress.OK_BODY)
    assert sides[0].flask_calls == 0
    [event] = sides[0].store.redis.lrange(sides[0].store.key("q", f"hd:{CONV}"), 0, -1)
    assert json.loads(event)["data"]["payload"] == {"text": "hello"}
    assert same_answer(sides, message(uid="BOT", payload={"latitude": 1, "longitude": 2}))[0] == (
        "200 OK"
    )
    assert sides[0].flask_calls == 0


@pytest.mark.parametrize(
    ("body", "how", "status"),
    [
        (message(cid="c_unknown"), {}, "404 NOT FOUND"),
        (message(uid="u_unknown"), {}, "404 NOT FOUND"),
        (b'{"type": "botSendsMessage",', {}, "400 BAD REQUEST"),
        (b"[1, 2]", {}, "400 BAD REQUEST"),
        (b"\xff\xfe{}", {}, "400 BAD REQUEST"),
        (message(payload={"nothing": "known"}), {}, "400 BAD REQUEST"),
        (message(payload={"text": ""}), {}, "400 BAD REQUEST"),
        (message(cid="x" * 513), {}, "400 BAD REQUEST"),
        (message(type="ping"), {}, "400 BAD REQUEST"),
        (message(), {"path": f"/botpress/{SECRET}x/botSendsMessage"}, "404 NOT FOUND"),
        (message(), {"path": f"/botpress/{SECRET}/botSendsMessage/"}, "404 NOT FOUND"),
        (message(), {"path": f"/botpress/{SECRET}/xbotSendsMessage"}, "404 NOT FOUND"),
        (message(), {"path": f"/botpress/é{SECRET[1:]}/botSendsMessage"}, "404 NOT FOUND"),
        (message(), {"method": "PUT"}, "405 METHOD NOT ALLOWED"),
        (message(), {"length": str(len(message()) + 5)}, "400 BAD REQUEST"),  # body cut short
        (message(), {"length": "²"}, "400 BAD REQUEST"),
        (message(), {"length": ""}, "400 BAD REQUEST"),  # no length: no body
        (b"", {}, "400 BAD REQUEST"),
        (message(payload={"text": "x" * 2_000_000}), {}, "413 REQUEST ENTITY TOO LARGE"),
    ],
)
def test_anything_else_is_answered_by_flask(
    sides: tuple[Side, Side], body: bytes, how: dict[str, Any], status: str
) -> None:
    assert same_answer(sides, body, **how)[0] == status
    assert sides[0].flask_calls == 1


def test_a_message_the_direct_check_doubts_is_decided_by_flask(sides: tuple[Side, Side]) -> None:
    # A bloc whose items are not all objects: the schema decides (and refuses it) in Flask.
    body = message(payload={"items": [{"type": "text", "payload": {"text": "a"}}, 1]})
    assert same_answer(sides, body)[0] == "400 BAD REQUEST"
    assert sides[0].flask_calls == 1


def test_a_chunked_body_goes_to_flask(sides: tuple[Side, Side]) -> None:
    how = {
        "length": "",
        "extra": {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input_terminated": True},
    }
    assert same_answer(sides, message(), **how)[0] == "200 OK"
    assert sides[0].flask_calls == 1


def test_a_body_that_breaks_off_is_answered_like_flask_s(sides: tuple[Side, Side]) -> None:
    class Broken(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            raise ConnectionResetError("peer went away")

    assert same_answer(sides, message(), extra={"wsgi.input": Broken()})[0] == "400 BAD REQUEST"
    assert sides[0].flask_calls == 1


def test_storage_down_is_a_503_like_flask_s(sides: tuple[Side, Side]) -> None:
    for side in sides:
        side.server.connected = False
    status, headers, body = call(sides[0].lane, message())
    assert (status, headers, body) == call(sides[1].flask, message())
    for side in sides:
        side.server.connected = True
    assert sides[0].state() == sides[1].state()
    assert status == "503 SERVICE UNAVAILABLE"
    assert ("Retry-After", "5") in headers
    assert json.loads(body)["error"] == "storage unavailable"
    assert sides[0].flask_calls == 0


def test_a_write_that_times_out_is_never_tried_again(
    sides: tuple[Side, Side], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The append may have landed: the lane answers 503 itself, it does not hand over."""
    through_lane = sides[0]
    for side in sides:
        real = side.store.append

        def lands_then_times_out(*args: Any, real: Any = real, **kwargs: Any) -> str:
            real(*args, **kwargs)
            raise redis.TimeoutError("no answer")

        monkeypatch.setattr(side.store, "append", lands_then_times_out)
    status, _, _ = same_answer(sides, message())
    assert status == "503 SERVICE UNAVAILABLE"
    assert through_lane.flask_calls == 0
    queue = through_lane.store.key("q", f"hd:{CONV}")
    assert through_lane.store.redis.llen(queue) == 1


def test_a_bug_is_a_500_like_flask_s(
    sides: tuple[Side, Side], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> str:
        raise KeyError("bug")

    for side in sides:
        monkeypatch.setattr(side.store, "append", broken)
    status, _, body = same_answer(sides, message())
    assert (status, json.loads(body)) == (
        "500 INTERNAL SERVER ERROR",
        {"error": "internal error", "details": "KeyError"},
    )
    assert sides[0].flask_calls == 0


# Generated bodies around the lane's edges: known or unknown ids, the bot as author,
# payloads of every message type and none, extra keys, and bytes that are not JSON.
_ids = st.sampled_from([CONV, USER, "BOT", "c_unknown", "", "x" * 513]) | st.integers()
_payloads = st.sampled_from(
    [
        {"text": "hi"},
        {"text": ""},
        {"markdown": "*hi*"},
        {"imageUrl": "https://x/y.png", "title": "y"},
        {"latitude": 45.5, "longitude": -73.6},
        {"latitude": True, "longitude": 1},
        {"items": [{"type": "text", "payload": {"text": "a"}}]},
        {"items": []},
        {"text": "Pick", "options": [{"label": "A", "value": "a"}]},
        {"title": "t", "actions": "no"},
        {},
        None,
        "text",
    ]
)
_bodies = st.builds(
    lambda cid, uid, payload, extra: json.dumps(
        {
            "type": "botSendsMessage",
            "remoteConversationId": cid,
            "remoteUserId": uid,
            "payload": payload,
            **extra,
        }
    ).encode(),
    _ids,
    _ids,
    _payloads,
    st.dictionaries(st.sampled_from(["type", "future", "payload"]), st.integers(), max_size=1),
) | st.binary(max_size=40)


@examples(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_bodies)
def test_generated_bodies_get_flask_s_answer_and_writes(settings: Settings, body: bytes) -> None:
    sides = Side(settings), Side(settings)
    for _ in range(2):  # a second time: the stream is then already awake
        same_answer(sides, body)
