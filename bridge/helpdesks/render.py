"""Botpress message payloads as text for a helpdesk, shared by every adapter that writes text.

`render`/`render_all` give a comment's text with the files it carries (Zendesk, Chatwoot,
Freshdesk); `one_line` a single line for a list of messages (the built-in inbox).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlparse

#: Bot messages start with this, so agents (and the bridge) can tell them apart.
BOT_PREFIX = "🤖 Bot:"
#: What stands for a message with nothing to show (a blank text, a carousel with no cards).
EMPTY = "(an empty {})"
_FILE_ICONS = {"image": "🖼️", "audio": "🔊", "video": "🎬", "file": "📎"}


@dataclass(frozen=True)
class FileRef:
    """A file a message points to, to be uploaded as a Zendesk attachment."""

    url: str
    name: str
    kind: str

    @property
    def label(self) -> str:
        return f"{_FILE_ICONS.get(self.kind, '📎')} {self.name}"

    @property
    def fallback(self) -> str:
        """What follows the label in the comment when the file could not be attached."""
        return f" (not attached, link: {self.url})"


_SLOT = re.compile("\x00(\\d+)\x00")


@dataclass
class Rendered:
    """One or more messages as comment text with a slot for each of `files`."""

    text: str = ""
    files: list[FileRef] = field(default_factory=list)

    def body(self, failed: Collection[int] = ()) -> str:
        """The comment text; files whose index is in `failed` get their link written out."""

        def fill(m: re.Match[str]) -> str:
            i = int(m.group(1))
            ref = self.files[i]
            return ref.label + (ref.fallback if i in failed else "")

        return _SLOT.sub(fill, self.text)


def _s(value: Any) -> str:
    """A payload field as text: payloads are as an end user's client sent them, so a title
    may be a number (written out) or anything else (left out), never a crash."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def file_name(url: str, title: str = "", kind: str = "file") -> str:
    """A file name for an attachment: the title if it has an extension, else the URL's."""
    from_url = posixpath.basename(unquote(urlparse(url).path)) if url else ""
    ext = posixpath.splitext(from_url)[1]
    title = title.replace("/", "_").strip()
    if title:
        return title if posixpath.splitext(title)[1] or not ext else f"{title}{ext}"
    return from_url or kind


def _options(payload: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for i, opt in enumerate(_list(payload.get("options")), 1):
        if isinstance(opt, Mapping):
            label = _s(opt.get("label")) or _s(opt.get("value"))
            value = _s(opt.get("value"))
            lines.append(f"  {i}. {label}" + (f" ({value})" if value and value != label else ""))
    return lines


def _card(payload: Mapping[str, Any]) -> list[str]:
    lines = [f"▪ {_s(payload.get('title'))}"]
    if sub := _s(payload.get("subtitle")):
        lines.append(sub)
    if img := _s(payload.get("imageUrl")):
        lines.append(f"Image: {img}")
    for action in _list(payload.get("actions")):
        if isinstance(action, Mapping):
            label = _s(action.get("label")) or _s(action.get("value"))
            value = _s(action.get("value"))
            lines.append(f"  [{label}]" + (f" → {value}" if value and value != label else ""))
    return lines


def render(message_type: str, payload: Mapping[str, Any], into: Rendered | None = None) -> Rendered:
    """Render one Botpress message; appends to `into` when given."""
    out = into if into is not None else Rendered()
    lines: list[str] = []
    if message_type in ("image", "audio", "video", "file"):
        key = {"image": "imageUrl", "audio": "audioUrl", "video": "videoUrl"}.get(
            message_type, "fileUrl"
        )
        url = _s(payload.get(key))
        ref = FileRef(url, file_name(url, _s(payload.get("title")), message_type), message_type)
        out.files.append(ref)
        lines.append(f"\x00{len(out.files) - 1}\x00")
    elif message_type in ("choice", "dropdown"):
        if text := _s(payload.get("text")):
            lines.append(text)
        lines.append("Options:")
        lines += _options(payload)
    elif message_type == "card":
        lines += _card(payload)
    elif message_type == "carousel":
        for item in _list(payload.get("items")):
            if isinstance(item, Mapping):
                lines += _card(item)
        if not lines:
            lines.append(EMPTY.format("carousel"))
    elif message_type == "bloc":
        before = (out.text, len(out.files))
        for item in _list(payload.get("items")):
            if isinstance(item, Mapping) and isinstance(item.get("payload"), Mapping):
                render(_s(item.get("type")), item["payload"], out)
        if (out.text, len(out.files)) == before:
            lines.append(EMPTY.format("bloc"))
    elif message_type == "location":
        lat, lon = payload.get("latitude"), payload.get("longitude")
        head = _s(payload.get("title")) or "Location"
        lines.append(f"📍 {head}")
        if addr := _s(payload.get("address")):
            lines.append(addr)
        lines.append(f"{lat}, {lon}: https://www.openstreetmap.org/?mlat={lat}&mlon={lon}")
    elif message_type in ("text", "markdown"):
        # Botpress allows a text of blanks; Zendesk refuses a blank comment.
        lines.append(_s(payload.get(message_type)) or EMPTY.format("message"))
    elif text := _s(payload.get("text")):
        lines.append(text)
    else:
        lines.append(json.dumps(dict(payload), sort_keys=True, ensure_ascii=False))
    if lines:
        block = "\n".join(lines)
        out.text = f"{out.text}\n\n{block}" if out.text else block
    return out


def render_all(messages: Sequence[tuple[str, Mapping[str, Any]]]) -> Rendered:
    """Several consecutive messages as one comment, in order."""
    out = Rendered()
    for message_type, payload in messages:
        render(message_type, payload, out)
    return out


def history_text(description: str, history: Sequence[tuple[str, str, str]]) -> str:
    """The first comment: the hand-off description, then the bot conversation so far."""
    parts = [description.strip() or "A Botpress conversation was handed to a human agent."]
    if history:
        lines = []
        for text, author, timestamp in history:
            who = author or "unknown"
            lines.append(f"[{timestamp}] {who}: {text}" if timestamp else f"{who}: {text}")
        parts.append("Conversation so far:\n" + "\n".join(lines))
    return "\n\n".join(parts)


def normalize(body: str) -> str:
    """Comment text compared for equality: Zendesk may re-wrap whitespace."""
    return " ".join(body.split())


def _raw(value: Any) -> str:
    """`_s` without the stripping: the inbox shows a field exactly as it was sent."""
    return value if isinstance(value, str) else _s(value)


def one_line(message_type: str, payload: Mapping[str, Any]) -> str:
    """A one-line text of a Botpress message, for a list of messages (the inbox's timeline).

    Fields are taken as the client sent them (`_raw`: not stripped)."""
    p = payload
    if message_type in ("text", "markdown"):
        return _raw(p.get(message_type))
    if message_type in ("image", "audio", "video", "file"):
        url = _raw(p.get(f"{message_type}Url"))
        title = _raw(p.get("title"))
        return f"[{message_type}] {title + ': ' if title else ''}{url}"
    if message_type == "location":
        label = _raw(p.get("title")) or _raw(p.get("address"))
        where = f"({_raw(p.get('latitude'))}, {_raw(p.get('longitude'))})"
        return f"[location] {label} {where}" if label else f"[location] {where}"
    if message_type in ("choice", "dropdown"):
        labels = ", ".join(
            _raw(o.get("label")) or _raw(o.get("value"))
            for o in _list(p.get("options"))
            if isinstance(o, Mapping)
        )
        return f"{_raw(p.get('text'))} [options: {labels}]".strip()
    if message_type == "card":
        return f"[card] {_raw(p.get('title'))}"
    if message_type in ("carousel", "bloc"):
        return f"[{message_type}] {len(_list(p.get('items')))} items"
    return json.dumps(dict(p), ensure_ascii=False)
