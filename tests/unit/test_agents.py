"""The inbox's agents (issue 15): names, salted password hashes, versions, and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import redis

from bridge.helpdesks.inbox.agents import MIN_PASSWORD, AgentError, Agents
from bridge.storage import Store
from tests.conftest import ADMIN_TOKEN, SECRET

PASSWORD = "correct horse battery"


def test_an_agent_signs_in_with_their_password_only(store: Store) -> None:
    agents = Agents(store)
    added = agents.add("alice", PASSWORD)
    assert added.version == 1 and agents.verify("alice", PASSWORD) == added
    for name, password in (("alice", PASSWORD + "x"), ("alice", ""), ("bob", PASSWORD)):
        assert agents.verify(name, password) is None
    # ADMIN_TOKEN is no agent's password, whatever the name.
    assert agents.verify("admin", ADMIN_TOKEN) is None
    # Stored salted and hashed: never the password, never the same hash twice.
    agents.add("bob", PASSWORD)
    raw = store.redis.hgetall(store.key("adapter", "inbox", "agents"))
    assert PASSWORD not in json.dumps(raw)
    assert json.loads(raw["alice"])["hash"] != json.loads(raw["bob"])["hash"]


def test_a_new_password_ends_what_the_old_one_granted(store: Store) -> None:
    agents = Agents(store)
    agents.add("alice", PASSWORD)
    changed = agents.set_password("alice", "another long password")
    assert changed.version == 2 and agents.version("alice") == 2
    assert agents.verify("alice", PASSWORD) is None
    assert agents.verify("alice", "another long password") == changed
    assert agents.remove("alice") and agents.version("alice") is None
    assert not agents.remove("alice")


@pytest.mark.parametrize(
    ("name", "password", "why"),
    [
        ("Alice", PASSWORD, "lower-case"),
        ("agent:x", PASSWORD, "lower-case"),
        ("", PASSWORD, "lower-case"),
        ("a" * 65, PASSWORD, "1 to 64"),
        ("alice", "x" * (MIN_PASSWORD - 1), f"at least {MIN_PASSWORD}"),
    ],
)
def test_names_and_passwords_are_checked(store: Store, name: str, password: str, why: str) -> None:
    with pytest.raises(AgentError, match=why):
        Agents(store).add(name, password)


def test_a_taken_name_is_refused(store: Store) -> None:
    agents = Agents(store)
    agents.add("alice", PASSWORD)
    with pytest.raises(AgentError, match="exists already"):
        agents.add("alice", "some other password")
    with pytest.raises(AgentError, match="no agent"):
        agents.set_password("zed", PASSWORD)


@pytest.mark.integration
def test_the_cli_manages_agents(redis_url: str) -> None:
    env = {"BRIDGE_SECRET": SECRET, "REDIS_URL": redis_url, "PATH": "/usr/bin:/bin"}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bridge.cli", "agents", *args],
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert cli("add", "alice", "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    assert cli("add", "alice", "--password-stdin", stdin=PASSWORD + "\n").returncode == 1
    short = cli("add", "bob", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least" in short.stderr
    assert cli("list").stdout.split()[0] == "alice"
    assert (
        cli("password", "alice", "--password-stdin", stdin="a new long password\n").returncode == 0
    )
    agents = Agents(Store(redis.Redis.from_url(redis_url, decode_responses=True)))
    assert agents.verify("alice", "a new long password") is not None
    assert cli("remove", "alice").returncode == 0 and cli("remove", "alice").returncode == 1
    assert cli("list").stdout == ""


def test_a_typed_password_must_be_typed_the_same_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from bridge import cli

    answers = iter(["first password!!", "second password!"])
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: next(answers))
    args = argparse.Namespace(name="alice", password_stdin=False)
    with pytest.raises(ValueError, match="differ"):
        cli._new_password(args)
    answers = iter(["same password!!!", "same password!!!"])
    assert cli._new_password(args) == "same password!!!"
