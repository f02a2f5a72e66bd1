"""Rotating the path secret without losing a call (docs/security.md): while Botpress moves to
the new URL, BRIDGE_SECRET_PREVIOUS is accepted beside BRIDGE_SECRET, on the express lane and
on every Flask route alike; any other secret stays a 404 that stores nothing."""

from __future__ import annotations

import pytest

from bridge.app import create_app
from bridge.config import Settings
from bridge.errors import ConfigError
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.runtime import Runtime
from bridge.storage import Store
from bridge.web import botpress
from tests.conftest import SECRET, BridgeClient
from tests.unit.conftest import Published

NEW = "new-secret-Qm7Zx2Lp9Vb4"


def _bridge(store: Store, **env: str) -> BridgeClient:
    settings = Settings.from_env({"BRIDGE_SECRET": NEW, **env})
    rt = Runtime(settings, store, InboxHelpdesk(settings, store), Published())
    return BridgeClient(create_app(runtime=rt).test_client())


def test_both_secrets_work_during_a_rotation_and_only_them(
    store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(botpress, "_previous_noted", 0.0)
    bp = _bridge(store, BRIDGE_SECRET_PREVIOUS=SECRET)
    cid = bp.conversation()  # a Flask route, with the previous secret (BridgeClient's)
    message = {
        "type": "botSendsMessage",
        "remoteConversationId": cid,
        "remoteUserId": "BOT",
        "payload": {"text": "hi"},
    }
    for secret in (SECRET, NEW):  # the express lane takes this body
        assert bp.call("botSendsMessage", message, secret=secret).status_code == 200
    for other in ("x" * 22, SECRET + "x", SECRET[:-1], ""):
        assert bp.call("botSendsMessage", message, secret=other).status_code == 404
        assert bp.call("ping", {"type": "ping"}, secret=other).status_code == 404
    assert store.length(f"hd:{cid}") == 3  # the creation and two messages
    # Logged (at most once a minute), so an operator sees when the old URL stops being used.
    assert capsys.readouterr().err.count("used BRIDGE_SECRET_PREVIOUS") == 1


def test_without_a_rotation_the_old_secret_is_a_404(store: Store) -> None:
    bp = _bridge(store)
    assert bp.call("ping", {"type": "ping"}, secret=SECRET).status_code == 404
    assert bp.call("ping", {"type": "ping"}, secret=NEW).status_code == 200


@pytest.mark.parametrize("previous", [NEW, "short", "z" * 30])
def test_the_previous_secret_is_held_to_the_same_rules(previous: str) -> None:
    with pytest.raises(ConfigError, match="BRIDGE_SECRET_PREVIOUS"):
        Settings.from_env({"BRIDGE_SECRET": NEW, "BRIDGE_SECRET_PREVIOUS": previous})
