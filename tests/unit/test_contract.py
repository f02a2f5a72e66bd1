from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from bridge import contract


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"text": "hi"}, "text"),
        ({"text": "hi", "userId": "bp-1"}, "text"),
        ({"markdown": "**hi**"}, "markdown"),
        ({"imageUrl": "https://x/y.png"}, "image"),
        ({"audioUrl": "https://x/y.mp3"}, "audio"),
        ({"videoUrl": "https://x/y.mp4"}, "video"),
        ({"fileUrl": "https://x/y.pdf", "title": "y.pdf"}, "file"),
        ({"latitude": 45.5, "longitude": -73.6, "title": "Office"}, "location"),
        ({"text": "Pick", "options": [{"label": "A", "value": "a"}]}, "choice"),
        ({"title": "Card", "imageUrl": "https://x/c.png", "actions": []}, "card"),
        ({"items": [{"title": "One", "actions": []}]}, "carousel"),
        ({"items": [{"type": "text", "payload": {"text": "a"}}]}, "bloc"),
        # Botpress's schemas allow these (`z.string().min(1)`, arrays with no minimum).
        ({"text": " \n\t "}, "text"),
        ({"markdown": " "}, "markdown"),
        ({"items": []}, "carousel"),
    ],
)
def test_message_type_is_inferred_from_keys(payload: dict[str, Any], expected: str) -> None:
    assert contract.message_type(payload) == expected


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"userId": "x"},
        {"text": ""},
        {"text": 3},
        {"latitude": "north", "longitude": 1},
        {"items": ["a"]},
        {"items": {}},
        {"options": "a"},
        {"imageUrl": None},
    ],
)
def test_unrecognised_or_malformed_payloads_are_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        contract.message_type(payload)


def test_schemas_keep_unknown_keys() -> None:
    data = contract.load(
        "createRemoteUser",
        {"type": "createRemoteUser", "future": 1, "payload": {"name": "Ada", "locale": "fr"}},
    )
    assert data["payload"]["locale"] == "fr" and data["future"] == 1


def test_type_must_match_route() -> None:
    with pytest.raises(ValidationError) as info:
        contract.load("ping", {"type": "botSendsMessage"})
    assert "type" in info.value.messages_dict


def test_conversation_payload_is_optional_and_history_accepted() -> None:
    assert (
        contract.load("createRemoteConversation", {"type": "createRemoteConversation"})["payload"]
        == {}
    )
    data = contract.load(
        "createRemoteConversation",
        {
            "type": "createRemoteConversation",
            "payload": {
                "title": "t",
                "messageHistory": [{"text": "a", "author": "user"}],
                "userId": "u_1",
            },
        },
    )
    assert data["payload"]["messageHistory"][0]["text"] == "a"


def test_body_must_be_an_object() -> None:
    with pytest.raises(ValidationError):
        contract.load("ping", ["ping"])


def _nested(levels: int) -> Any:
    value: Any = "leaf"
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    return value


@pytest.mark.parametrize("route", contract.ROUTES)
def test_bodies_nested_past_64_levels_are_refused(route: str) -> None:
    # The body is one level, its payload a second: 62 more make 64 in all.
    body = {"type": route, "payload": {"text": "hi", "deep": _nested(62)}}
    assert contract.shallow(body) and not contract.shallow({"x": body})
    with pytest.raises(ValidationError) as info:
        contract.load(route, {"type": route, "payload": {"text": "hi", "deep": _nested(63)}})
    assert "deeper than 64" in str(info.value.messages)
    deep_message = {
        "type": "botSendsMessage",
        "remoteConversationId": "c_1",
        "remoteUserId": "BOT",
        "payload": {"text": "hi", "deep": _nested(1000)},
    }
    assert contract.usual_message(deep_message) is None


@pytest.mark.parametrize("bad", ["c_1\x00", "c_1\n", "c\x1b[31m", "c_1\x7f", "c_1\x9b"])
def test_ids_with_control_characters_are_refused(bad: str) -> None:
    message = {
        "type": "botSendsMessage",
        "remoteConversationId": bad,
        "remoteUserId": "BOT",
        "payload": {"text": "hi"},
    }
    assert contract.usual_message(message) is None
    with pytest.raises(ValidationError) as info:
        contract.load("botSendsMessage", message)
    assert "control characters" in str(info.value.messages)
    with pytest.raises(ValidationError) as info:
        contract.load(
            "closeRemoteTicket",
            {"type": "closeRemoteTicket", "payload": {"botpressConversationId": bad}},
        )
    assert "control characters" in str(info.value.messages)


# --- botSendsMessage's fast path (contract.usual_message) answers as the schema does ------

_SCHEMA = contract.BotSendsMessageSchema("botSendsMessage")

_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
# Around the schema's edges: empty, 512 and 513 characters, and not a string at all.
_ids = (
    st.text(max_size=3)
    | st.sampled_from(["x" * 512, "x" * 513, "é" * 512, "c_\x00", "c\x1b[2J", "c\x85", "c\x7f"])
    | _json
)
_message_keys = st.sampled_from(
    [
        *("text", "markdown", "imageUrl", "fileUrl", "latitude", "longitude", "items"),
        *("options", "title", "actions", "userId", "type"),
    ]
)
_payloads = st.dictionaries(_message_keys, st.text(max_size=3) | _json, max_size=3) | _json
_bodies = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["botSendsMessage", "ping"]) | _json,
        "remoteConversationId": _ids,
        "remoteUserId": _ids,
        "payload": _payloads,
        "future": _json,
    },
)


def _outcome(load: Any, body: Any) -> tuple[str, Any]:
    try:
        return "loaded", load(body)
    except ValidationError as exc:
        return "refused", exc.messages


@settings(max_examples=2000, deadline=None)
@given(_bodies)
def test_message_fast_path_loads_what_the_schema_loads(body: dict[str, Any]) -> None:
    assert _outcome(lambda b: contract.load("botSendsMessage", b), body) == _outcome(
        _SCHEMA.load, body
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"text": "hi"},
        {"imageUrl": "https://x/y.png", "title": "y"},
        {"latitude": 45.5, "longitude": -73.6},
        {"items": [{"type": "text", "payload": {"text": "a"}}]},
        {"text": "Pick", "options": [{"label": "A", "value": "a"}]},
    ],
)
def test_well_formed_messages_take_the_fast_path(payload: dict[str, Any]) -> None:
    body = {
        "type": "botSendsMessage",
        "remoteConversationId": "c_1",
        "remoteUserId": "BOT",
        "payload": payload,
        "future": [1],
    }
    loaded = contract.usual_message(body)
    assert loaded is not None and loaded == _SCHEMA.load(body)
    assert loaded["payload"] is not payload  # a copy, as the schema's Dict field makes
