"""What a request names never steers where the bridge's credentials go (issue 14 §6, §8):
`closeRemoteTicket`'s Botpress conversation id is one path segment of the Botpress API, and
a conversation with several `externalId` tags resolves to the one this bridge minted."""

from __future__ import annotations

import pytest

from bridge import events as ev
from bridge.config import Settings
from bridge.errors import PermanentError
from tests.conftest import SECRET
from tests.support.fake_botpress import FakeBotpress
from tests.support.scripted import open_conversation
from workers.botpress import Botpress
from workers.context import Context
from workers.handlers import resolve_close


def _botpress(fake: FakeBotpress) -> Botpress:
    return Botpress(
        Settings.from_env(
            {
                "BRIDGE_SECRET": SECRET,
                "BOTPRESS_API_URL": fake.url,
                "BOTPRESS_TOKEN": fake.token,
                "BOTPRESS_BOT_ID": fake.bot_id,
            }
        )
    )


@pytest.mark.parametrize(
    "bp_id",
    ["../../v1/admin/workspaces", "..%2F..%2Fv1%2Fadmin", "x/../../../v1/admin", "a?b=c#d", "."],
)
def test_the_conversation_id_stays_one_segment_of_the_conversations_path(
    fake_botpress: FakeBotpress, bp_id: str
) -> None:
    fake_botpress.conversations["decoy"] = {"id": "decoy", "tags": {"externalId": "c_decoy"}}
    with pytest.raises(PermanentError) as info:
        _botpress(fake_botpress).external_ids(bp_id)
    assert "HTTP 404" in info.value.reason
    [path] = fake_botpress.api_paths
    prefix = "/v1/chat/conversations/"
    assert path.startswith(prefix) and "/" not in path.removeprefix(prefix)
    assert ".." not in path.split("/") and "?" not in path and "#" not in path


def test_an_id_with_a_slash_reaches_exactly_that_conversation(fake_botpress: FakeBotpress) -> None:
    fake_botpress.conversations["a/b"] = {"id": "a/b", "tags": {"externalId": "c_1"}}
    assert _botpress(fake_botpress).external_ids("a/b") == ["c_1"]
    assert fake_botpress.api_paths == ["/v1/chat/conversations/a%2Fb"]


def test_several_external_id_tags_resolve_to_the_conversation_this_bridge_minted(
    ctx: Context, fake_botpress: FakeBotpress
) -> None:
    open_conversation(ctx, "c_ours")
    fake_botpress.conversations["bp-1"] = {
        "id": "bp-1",
        "tags": {
            "zendesk:externalId": "48213",  # another hand-off integration's ticket
            "plus/hitl-api:externalId": "c_ours",
            "note": "c_other",
        },
    }
    ctx.botpress = _botpress(fake_botpress)
    event = ev.Event(ev.CLOSE_RESOLVE, "rs:bp-1", {"botpress_conversation_id": "bp-1"})
    outcome = resolve_close(ctx, [event], None)  # type: ignore[arg-type]
    [close] = outcome.outputs
    assert close.stream == "hd:c_ours" and outcome.index == (
        ctx.store.key("bpconv", "bp-1"),
        "c_ours",
    )


def test_tags_naming_no_conversation_of_ours_are_refused_not_guessed(
    ctx: Context, fake_botpress: FakeBotpress
) -> None:
    fake_botpress.conversations["bp-2"] = {
        "id": "bp-2",
        "tags": {"zendesk:externalId": "48213", "plus/hitl-api:externalId": "c_gone"},
    }
    ctx.botpress = _botpress(fake_botpress)
    event = ev.Event(ev.CLOSE_RESOLVE, "rs:bp-2", {"botpress_conversation_id": "bp-2"})
    with pytest.raises(PermanentError) as info:
        resolve_close(ctx, [event], None)  # type: ignore[arg-type]
    assert "48213" in info.value.reason and "c_gone" in info.value.reason
