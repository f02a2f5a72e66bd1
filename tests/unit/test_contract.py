from __future__ import annotations

from typing import Any

import pytest
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
        {"items": []},
        {"items": ["a"]},
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
