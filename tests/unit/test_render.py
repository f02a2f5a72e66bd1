from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.helpdesks.render import BOT_PREFIX, file_name, history_text, render, render_all

PAYLOADS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "botpress_payloads.json").read_text()
)


def test_text_and_markdown_pass_through() -> None:
    assert render("text", PAYLOADS["text"]).body() == "Hello there"
    assert render("markdown", PAYLOADS["markdown"]).body() == "**Bold** and _italic_"


@pytest.mark.parametrize(
    ("kind", "name", "icon"),
    [
        ("image", "A cat.png", "🖼️"),
        ("file", "Quarterly report.pdf", "📎"),
        ("audio", "voice.mp3", "🔊"),
        ("video", "clip.mp4", "🎬"),
    ],
)
def test_files_become_attachments_with_a_label(kind: str, name: str, icon: str) -> None:
    r = render(kind, PAYLOADS[kind])
    assert [(f.kind, f.name) for f in r.files] == [(kind, name)]
    assert r.body() == f"{icon} {name}"
    assert r.body(failed={0}) == f"{icon} {name} (not attached, link: {r.files[0].url})"


def test_choice_lists_options_in_order() -> None:
    assert render("choice", PAYLOADS["choice"]).body() == (
        "Pick a plan\nOptions:\n  1. Basic (basic)\n  2. Pro (pro)"
    )
    assert "1. Canada (CA)" in render("dropdown", PAYLOADS["dropdown"]).body()


def test_card_and_carousel_are_readable() -> None:
    card = render("card", PAYLOADS["card"]).body()
    assert card.splitlines() == [
        "▪ Pro plan",
        "$20/month",
        "Image: https://cdn.example.com/pro.png",
        "  [Buy] → https://shop.example.com/pro",
        "  [Details] → details_pro",
    ]
    carousel = render("carousel", PAYLOADS["carousel"]).body()
    assert carousel.index("▪ Basic") < carousel.index("▪ Pro")
    assert carousel.count("[Choose]") == 2


def test_bloc_renders_each_item_and_collects_its_files() -> None:
    r = render("bloc", PAYLOADS["bloc"])
    assert r.body() == "Here is your invoice\n\n📎 invoice.pdf"
    assert [f.url for f in r.files] == ["https://cdn.example.com/docs/invoice.pdf"]


def test_location_has_address_and_map_link() -> None:
    body = render("location", PAYLOADS["location"]).body()
    assert body.startswith("📍 Head office\n1 Place Ville Marie, Montreal\n45.5017, -73.5673")
    assert "openstreetmap.org/?mlat=45.5017&mlon=-73.5673" in body


def test_unknown_payload_is_still_shown() -> None:
    assert render("mystery", {"foo": 1}).body() == '{"foo": 1}'


def test_several_messages_keep_their_order_and_slots() -> None:
    r = render_all(
        [
            ("text", {"text": "one"}),
            ("image", PAYLOADS["image"]),
            ("text", {"text": "two"}),
            ("file", PAYLOADS["file"]),
        ]
    )
    assert r.body(failed={1}).split("\n\n") == [
        "one",
        "🖼️ A cat.png",
        "two",
        "📎 Quarterly report.pdf (not attached, link: https://cdn.example.com/docs/report.pdf)",
    ]


def test_file_names_and_history() -> None:
    assert file_name("https://x/a%20b.png") == "a b.png"
    assert file_name("https://x/y", "", "image") == "y"
    assert file_name("https://x/", "", "image") == "image"
    assert file_name("https://x/r.pdf", "a/b") == "a_b.pdf"
    text = history_text("desc", [("hi", "user", "2024-01-01T00:00:00Z"), ("hello", "", "")])
    assert text == "desc\n\nConversation so far:\n[2024-01-01T00:00:00Z] user: hi\nunknown: hello"
    assert BOT_PREFIX == "🤖 Bot:"
