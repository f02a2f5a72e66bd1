"""Hostile message payloads (issue 14 §7, §8): whatever JSON an end user's client puts in a
payload that the contract accepts, the renderers show it and never raise; a payload that
still breaks an adapter is set aside after a few tries, never held for the retry window."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from bridge import contract
from bridge.helpdesks import render as zendesk_render
from bridge.helpdesks.render import one_line as inbox_render
from tests.conftest import BridgeClient
from tests.support.scripted import helpdesk, open_conversation, say
from workers.context import Context
from workers.drain import MAX_FAULTS, drain

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6)
_json: st.SearchStrategy[Any] = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        *("text", "markdown", "imageUrl", "audioUrl", "videoUrl", "fileUrl", "title"),
        *("latitude", "longitude", "address", "items", "options", "actions", "subtitle"),
        *("type", "payload", "label", "value", "userId"),
    ]
)
_payloads = st.dictionaries(_keys, _json, max_size=5)
_bloc_items = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["text", "image", "file", "card", "location", "bloc"]) | _json,
            "payload": _payloads,
        }
    ),
    max_size=3,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_payloads, _bloc_items.map(lambda items: {"items": items})))
def test_renderers_show_any_payload_the_contract_accepts(payload: dict[str, Any]) -> None:
    try:
        kind = contract.message_type(payload)
    except ValidationError:
        return
    assert isinstance(inbox_render(kind, payload), str)
    rendered = zendesk_render.render(kind, payload)
    # Zendesk refuses a blank comment: every accepted message shows something.
    assert rendered.body().strip()


_XSS = "<script>alert(1)</script>"
_strings = st.sampled_from([_XSS, "javascript:alert(1)", '"><img src=x onerror=alert(1)>', ""])
_hostile = st.recursive(
    _scalars | _strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=8,
)
# One well-formed message of each type, its text fields filled by the attacker.
_TEMPLATES = [
    lambda s: {"text": s},
    lambda s: {"markdown": s},
    lambda s: {"imageUrl": s, "title": s},
    lambda s: {"audioUrl": s},
    lambda s: {"videoUrl": s},
    lambda s: {"fileUrl": s, "title": s},
    lambda s: {"latitude": 1.5, "longitude": 2.5, "title": s, "address": s},
    lambda s: {"text": s, "options": [{"label": s, "value": s}]},
    lambda s: {"title": s, "subtitle": s, "imageUrl": s, "actions": [{"label": s, "value": s}]},
    lambda s: {"items": [{"title": s, "imageUrl": s, "actions": [{"label": s, "action": s}]}]},
    lambda s: {"items": [{"type": "text", "payload": {"text": s}}, {"type": s, "payload": s}]},
]
_console_payloads = st.builds(
    lambda template, s, extra: {**extra, **template(s)},
    st.sampled_from(_TEMPLATES),
    _strings,
    st.dictionaries(_keys, _hostile, max_size=3),
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(_console_payloads)
def test_the_console_shows_any_payload_escaped(app: Flask, payload: dict[str, Any]) -> None:
    """The agent console renders whatever an accepted payload holds (issue 15), and nothing
    in it becomes markup or a script link."""
    try:
        kind = contract.message_type(payload)
    except ValidationError:
        return
    with app.app_context():
        macros: Any = app.jinja_env.get_template("console/_message.html").module
        html = str(macros.content(kind, payload))
    for attack in ("<script", "<img src=x", 'href="javascript:', 'src="javascript:'):
        assert attack not in html, (kind, payload, html)


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        ({"imageUrl": "https://x.example/a.png", "title": 42}, "42"),
        ({"fileUrl": "https://x.example/a.pdf", "title": ["a"]}, "a.pdf"),
        ({"text": "   "}, ""),
        ({"items": []}, "carousel"),
        ({"items": [{"title": 7, "actions": 5}]}, "1 items"),
        ({"text": "pick", "options": [{"label": 1, "value": None}]}, "1"),
        ({"latitude": 1.5, "longitude": 2, "title": {"x": 1}}, "1.5"),
    ],
)
def test_payloads_that_once_crashed_a_renderer(payload: dict[str, Any], shown: str) -> None:
    kind = contract.message_type(payload)
    assert shown in inbox_render(kind, payload)
    assert zendesk_render.render(kind, payload).body().strip()


def test_the_integrations_edge_cases_are_accepted(bp: BridgeClient) -> None:
    """Bodies Botpress's own client sends (its schemas: `z.string().min(1)`, arrays with no
    minimum) that the bridge once refused with 400."""
    uid, cid = bp.user(), bp.conversation()
    for payload in ({"text": " "}, {"text": "\n\t"}, {"items": []}, {"markdown": " "}):
        assert bp.say(cid, uid, payload).status_code == 200
    bloc = {"items": [{"type": "text", "payload": {"text": " "}}]}
    assert bp.say(cid, "BOT", bloc).status_code == 200


def test_a_message_that_breaks_the_adapter_never_blocks_its_conversation(ctx: Context) -> None:
    stream = open_conversation(ctx)
    drain(ctx, stream)
    say(ctx, "c_1", "BOT", "poison")
    helpdesk(ctx).failures = [TypeError("can only concatenate str (not 'int') to str")] * 99
    for _ in range(MAX_FAULTS):
        drain(ctx, stream)
        ctx.store.redis.hset(ctx.store.key("head", stream), "due", "0")
    [dl] = ctx.store.dead_letters()
    assert "TypeError: can only concatenate" in dl.reason
    helpdesk(ctx).failures = []
    say(ctx, "c_1", "BOT", "next")
    drain(ctx, stream)
    assert helpdesk(ctx).calls[-1] == ("messages", ["next"])
