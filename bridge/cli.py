"""`hitl-bridge`: the operator's command line."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import redis

from bridge import reports
from bridge.config import Settings, redis_connections_needed
from bridge.errors import ConfigError, Refused
from bridge.storage import Store


def _out(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _runtime(args: argparse.Namespace) -> Any:
    from bridge.app import build_runtime

    return build_runtime(Settings.from_env())


# -- check ------------------------------------------------------------------------------
def cmd_check(args: argparse.Namespace) -> int:
    """Validate configuration, reach Redis, and verify the helpdesk's credentials."""
    from bridge.helpdesks import settings_or_exit

    settings = settings_or_exit()
    rt = _runtime(args)
    try:
        rt.store.ping()
        print(f"redis: ok ({settings.redis_url.split('@')[-1]})")
    except Exception as exc:
        print(f"redis: unreachable ({type(exc).__name__}: {exc})")
        return 1
    print(_connections(rt.store, settings))
    if settings.celery_broker_url:
        from bridge.publisher import broker_app

        where = settings.broker_url.split("@")[-1]
        try:
            with broker_app(settings).connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=5)
            print(f"celery broker: ok ({where})")
        except Exception as exc:
            print(f"celery broker: unreachable ({where}: {type(exc).__name__})")
            return 1
    helpdesk_problems = rt.helpdesk.check()
    for line in helpdesk_problems:
        print(f"helpdesk {settings.helpdesk}: {line}")
    if not helpdesk_problems:
        print(f"helpdesk {settings.helpdesk}: ok")
    webhook = "set" if settings.botpress_webhook_url else "NOT SET (agent replies wait)"
    print(f"botpress webhook: {webhook}")
    print(f"botpress api (close resolution): {'set' if settings.botpress_token else 'not set'}")
    return 1 if helpdesk_problems else 0


def _connections(store: Store, settings: Settings) -> str:
    """Advice, not a failure: the processes' Redis connections against the server's cap."""
    needed = redis_connections_needed(settings.environ)
    try:
        info = store.redis.info("clients")
    except redis.ResponseError:
        return f"redis connections: about {needed} for one web, worker and beat (cap unknown)"
    cap, used = int(info.get("maxclients", 0)), int(info.get("connected_clients", 0))
    line = (
        f"redis connections: {used} in use of {cap or 'unknown'} allowed; one web, worker "
        f"and beat with this configuration hold about {needed}"
    )
    if cap and needed > cap:
        line += (
            " -- MORE THAN REDIS ALLOWS: lower WEB_CONCURRENCY, WEB_THREADS or "
            "WORKER_CONCURRENCY, or use a bigger Redis plan (docs/operating.md)"
        )
    return line


# -- inbox ------------------------------------------------------------------------------
def _inbox_runtime(args: argparse.Namespace) -> Any:
    """The runtime when HELPDESK=inbox (the inbox and agents commands need it), else None,
    having said so."""
    from bridge.helpdesks.inbox import InboxHelpdesk

    rt = _runtime(args)
    if not isinstance(rt.helpdesk, InboxHelpdesk):
        print(
            f"HELPDESK is {rt.settings.helpdesk!r}; the {args.command} commands need HELPDESK=inbox"
        )
        return None
    return rt


def cmd_inbox(args: argparse.Namespace) -> int:
    rt = _inbox_runtime(args)
    if rt is None:
        return 2
    from bridge.helpdesks.inbox.desk import Desk

    desk = Desk(rt.store)
    if args.action == "list":
        for t in desk.tickets(status=args.status):
            last = t["messages"][-1]["text"] if t["messages"] else ""
            assignee = t["assignee"] or "-"
            print(
                f"{t['id']}  {t['status']:<6}  {assignee:<12}  {t['subject'][:40]:<40}  {last[:60]}"
            )
        return 0
    if args.action == "show":
        ticket = desk.ticket(args.id)
        if ticket is None:
            print(f"no conversation {args.id}")
            return 1
        _out(ticket)
        return 0
    kind = {"reply": "message", "assign": "assign", "close": "close"}[args.action]
    try:
        desk.act(args.id, kind, args.agent, text=getattr(args, "text", "") or "")
    except Refused as exc:
        print(f"no conversation {args.id}" if exc.status == 404 else str(exc))
        return 1
    rt.ring(args.id)
    print("ok")
    return 0


# -- agents -----------------------------------------------------------------------------
def _new_password(args: argparse.Namespace) -> str:
    """The password from standard input (`--password-stdin`: its first line), else typed
    twice at a prompt that does not echo it."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_agents(args: argparse.Namespace) -> int:
    """The inbox's agents, who sign in to its console: add, list, remove, password."""
    from bridge.helpdesks.inbox.agents import AgentError, Agents

    rt = _inbox_runtime(args)
    if rt is None:
        return 2
    agents = Agents(rt.store)
    try:
        if args.action == "list":
            for agent in agents.list():
                when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(agent.created))
                print(f"{agent.name}  (since {when} UTC)")
            return 0
        if args.action == "remove":
            if not agents.remove(args.name):
                print(f"no agent {args.name}")
                return 1
            print(f"removed {args.name}")
            return 0
        password = _new_password(args)
        if args.action == "add":
            agents.add(args.name, password)
            print(f"added {args.name}")
        else:
            agents.set_password(args.name, password)
            print(f"new password for {args.name}")
        return 0
    except (AgentError, ValueError) as exc:
        print(str(exc), file=sys.stderr)
        return 1


# -- dead letters -----------------------------------------------------------------------
def cmd_dlq(args: argparse.Namespace) -> int:
    rt = _runtime(args)
    store = rt.store
    if args.action == "list":
        letters = store.dead_letters(limit=args.limit, offset=args.offset)
        if args.json:
            _out([reports.dead_letter_summary(d) for d in letters])
            return 0
        for d in letters:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(d.at))
            print(f"{d.id}  {when}  {d.stream}  {d.event.kind}  attempts={d.attempts}  {d.reason}")
        total = store.count_dead_letters()
        if args.offset + len(letters) < total:
            print(f"... {total} in all; see more with --offset {args.offset + len(letters)}")
        return 0
    ids = [d.id for d in store.dead_letters(limit=100_000)] if args.id == "all" else [args.id]
    if args.action == "replay":
        # Each replay goes to the head of its stream: newest first restores the order.
        ids.reverse()
    for dlq_id in ids:
        if args.action == "show":
            d = store.get_dead_letter(dlq_id)
            if d is None:
                print(f"no dead letter {dlq_id}")
                return 1
            _out(reports.dead_letter_detail(d))
        elif args.action == "replay":
            stream = store.replay(dlq_id, lease_seconds=rt.settings.lease_seconds)
            if stream is None:
                print(f"no dead letter {dlq_id}")
                return 1
            rt.kick(stream)
            print(f"replayed {dlq_id} onto {stream}")
        elif args.action == "purge":
            if not store.purge_dead_letter(dlq_id):
                print(f"no dead letter {dlq_id}")
                return 1
            print(f"purged {dlq_id}")
    return 0


# -- conversations ----------------------------------------------------------------------
def cmd_conversations(args: argparse.Namespace) -> int:
    report = reports.conversation_report(_runtime(args), args.id)
    if report is None:
        print(f"no conversation {args.id}")
        return 1
    _out(report)
    return 0


# -- zendesk ----------------------------------------------------------------------------
def cmd_zendesk(args: argparse.Namespace) -> int:
    """Zendesk set-up: the bridge's OAuth authorization (`authorize`), and the webhook and
    trigger that ring the bridge's doorbell (`setup`, idempotent)."""
    from bridge.helpdesks.zendesk.setup import setup

    settings = Settings.from_env()
    if args.action == "authorize":
        return _zendesk_authorize(args, settings)
    print(setup(settings, args.public_url.rstrip("/")))
    return 0


# -- freshdesk --------------------------------------------------------------------------
def cmd_freshdesk(args: argparse.Namespace) -> int:
    """Freshdesk set-up: check the API key and print the automation rule to create."""
    from bridge.errors import DeliveryError
    from bridge.helpdesks.freshdesk.setup import setup

    settings = Settings.from_env()
    try:
        print(setup(settings, args.public_url.rstrip("/")))
    except DeliveryError as exc:
        detail = f": {exc.response[:300]}" if exc.response else ""
        print(f"Freshdesk refused: {exc.reason}{detail}", file=sys.stderr)
        return 1
    return 0


def _zendesk_authorize(args: argparse.Namespace, settings: Settings) -> int:
    """The authorization-code grant: print Zendesk's authorization page, take the code the
    browser comes back with, and store the token pair for the workers."""
    import secrets

    from bridge.errors import DeliveryError
    from bridge.helpdesks.zendesk.config import ZendeskConfig, redirect_uri_problem
    from bridge.helpdesks.zendesk.oauth import authorize_url
    from bridge.helpdesks.zendesk.setup import authorize, code_from

    config = ZendeskConfig.from_environ(settings.environ)
    if config.auth != "oauth_client":
        print(
            "authorize needs an OAuth client: set ZENDESK_OAUTH_CLIENT_ID and "
            "ZENDESK_OAUTH_CLIENT_SECRET (docs/zendesk.md)",
            file=sys.stderr,
        )
        return 2
    redirect_uri = (args.redirect_uri or config.redirect_uri).strip()
    why = redirect_uri_problem(redirect_uri) if redirect_uri else "is not set"
    if why:
        print(
            f"the redirect URL {why}: set ZENDESK_OAUTH_REDIRECT_URI (or pass --redirect-uri) "
            "to one of the OAuth client's redirect URLs",
            file=sys.stderr,
        )
        return 2
    store = Store.from_settings(settings)
    try:
        store.ping()  # before the code is spent: the pair must have somewhere to go
    except redis.RedisError as exc:
        print(f"redis: unreachable ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 1
    try:
        if args.code:
            code = code_from(args.code, None)
        else:
            state = secrets.token_urlsafe(24)
            print(
                "1. Open this page in a browser signed in to Zendesk as the user the bridge "
                "is to act as (an agent or admin, e.g. a dedicated one), and allow access:\n\n"
                f"   {authorize_url(config, redirect_uri, state)}\n\n"
                f"2. Zendesk then sends the browser to {redirect_uri}?code=... (nothing needs "
                "to answer there). Paste that whole address here within 2 minutes.\n"
            )
            code = code_from(input("Address: "), state)
    except (ValueError, EOFError) as exc:
        print(str(exc) or "no address was given", file=sys.stderr)
        return 1
    try:
        print(authorize(settings, store, code, redirect_uri))
    except DeliveryError as exc:
        detail = f": {exc.response[:300]}" if exc.response else ""
        print(f"not authorized: {exc.reason}{detail}", file=sys.stderr)
        return 1
    return 0


# -- chatwoot ---------------------------------------------------------------------------
def cmd_chatwoot(args: argparse.Namespace) -> int:
    """Chatwoot set-up: check the token and the API inbox, and create or repair the webhook
    that rings the bridge's doorbell (idempotent)."""
    from bridge.errors import DeliveryError
    from bridge.helpdesks.chatwoot.setup import setup

    settings = Settings.from_env()
    try:
        print(setup(settings, Store.from_settings(settings), args.public_url.rstrip("/")))
    except DeliveryError as exc:
        detail = f": {exc.response[:300]}" if exc.response else ""
        print(f"chatwoot setup failed: {exc.reason}{detail}", file=sys.stderr)
        return 1
    return 0


# -- dev --------------------------------------------------------------------------------
def _dev_agent(settings: Settings) -> None:
    """With the playground on, someone must be able to sign in to the console: a first run
    makes a `demo` agent and prints its password (once); later runs name the agents."""
    import secrets

    from bridge.helpdesks.inbox.agents import Agents

    try:
        agents = Agents(Store.from_settings(settings))
        names = [a.name for a in agents.list()]
        if not names:
            password = secrets.token_urlsafe(12)
            agents.add("demo", password)
            print(
                f"Console sign-in: demo / {password} (made because the inbox had no agents; "
                "add your own with: hitl-bridge agents add NAME)"
            )
        else:
            print(f"Console agents: {', '.join(names)} (more with: hitl-bridge agents add NAME)")
    except redis.RedisError as exc:
        print(f"Console agents: unknown, Redis is unreachable ({type(exc).__name__})")


def cmd_dev(args: argparse.Namespace) -> int:
    """Run web, worker and beat from the Procfile in the foreground, and live (the inbox
    console's live updates) with HELPDESK=inbox."""
    from bridge import procfile

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        for line in exc.problems:
            print(f"configuration error: {line}")
        return 2
    port = os.environ.get("PORT", "8000")
    if settings.playground:
        print(
            f"Open two tabs: agent console http://localhost:{port}/console/ "
            f"— end user http://localhost:{port}/playground/"
        )
        if settings.helpdesk == "inbox":
            _dev_agent(settings)
    print(f"Botpress endpoint base URL: http://localhost:{port}/botpress/{settings.bridge_secret}")
    if settings.admin_token:
        print(
            f"Inbox agent API: http://localhost:{port}/inbox/api/conversations "
            f"(Authorization: Bearer {settings.admin_token})"
        )
    processes = args.processes or ["web", "worker", "beat"]
    if not args.processes and settings.helpdesk == "inbox":
        processes.append("live")
        print(
            f"Console live updates: port {settings.live_port} "
            f"({settings.console_events_url or 'off: consoles poll'})"
        )
    return procfile.run(processes, os.environ)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hitl-bridge", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser(
        "check", help="validate configuration, Redis and helpdesk credentials"
    ).set_defaults(func=cmd_check)

    dev = sub.add_parser("dev", help="run the Procfile's processes in the foreground")
    dev.add_argument(
        "processes", nargs="*", help="default: web worker beat, and live with HELPDESK=inbox"
    )
    dev.set_defaults(func=cmd_dev)

    inbox = sub.add_parser("inbox", help="act as an agent in the built-in inbox helpdesk")
    isub = inbox.add_subparsers(dest="action", required=True)
    ls = isub.add_parser("list", help="list conversations")
    ls.add_argument("--status", choices=["open", "closed"])
    isub.add_parser("show", help="show one conversation").add_argument("id")
    reply = isub.add_parser("reply", help="reply as an agent")
    reply.add_argument("id")
    reply.add_argument("text")
    reply.add_argument("--agent", required=True)
    assign = isub.add_parser("assign", help="assign an agent")
    assign.add_argument("id")
    assign.add_argument("--agent", required=True)
    close = isub.add_parser("close", help="end the hand-off")
    close.add_argument("id")
    close.add_argument("--agent", default="agent")
    inbox.set_defaults(func=cmd_inbox)

    agents = sub.add_parser("agents", help="the inbox's agents: add, list, remove, password")
    asub = agents.add_subparsers(dest="action", required=True)
    asub.add_parser("list", help="list agents")
    asub.add_parser("remove", help="remove an agent").add_argument("name")
    for action, what in (("add", "add an agent"), ("password", "set an agent's password")):
        cmd = asub.add_parser(action, help=what)
        cmd.add_argument("name")
        cmd.add_argument(
            "--password-stdin", action="store_true", help="read the password from stdin"
        )
    agents.set_defaults(func=cmd_agents)

    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay, purge")
    dsub = dlq.add_subparsers(dest="action", required=True)
    dlist = dsub.add_parser("list")
    dlist.add_argument("--limit", type=int, default=100)
    dlist.add_argument("--offset", type=int, default=0)
    dlist.add_argument("--json", action="store_true", help="one JSON array, as the API answers")
    for action in ("show", "replay", "purge"):
        dsub.add_parser(action).add_argument("id", help="a dead-letter id, or 'all'")
    dlq.set_defaults(func=cmd_dlq)

    zendesk = sub.add_parser("zendesk", help="Zendesk account set-up")
    zsub = zendesk.add_subparsers(dest="action", required=True)
    zsetup = zsub.add_parser("setup", help="create the webhook and trigger in Zendesk")
    zsetup.add_argument(
        "public_url", help="the bridge's public base URL, e.g. https://bridge.example.com"
    )
    zauth = zsub.add_parser(
        "authorize", help="let the bridge act as a Zendesk user (OAuth authorization code)"
    )
    zauth.add_argument("--redirect-uri", default="", help="default: ZENDESK_OAUTH_REDIRECT_URI")
    zauth.add_argument(
        "--code",
        default="",
        help="the code (or the address holding it) instead of a prompt; its state goes unchecked",
    )
    zendesk.set_defaults(func=cmd_zendesk)

    freshdesk = sub.add_parser("freshdesk", help="Freshdesk account set-up")
    fsub = freshdesk.add_subparsers(dest="action", required=True)
    fsetup = fsub.add_parser(
        "setup", help="check the API key and print the automation rule to create"
    )
    fsetup.add_argument(
        "public_url", help="the bridge's public base URL, e.g. https://bridge.example.com"
    )
    freshdesk.set_defaults(func=cmd_freshdesk)

    chatwoot = sub.add_parser("chatwoot", help="Chatwoot account set-up")
    csetup = chatwoot.add_subparsers(dest="action", required=True).add_parser(
        "setup", help="check the API inbox and create the webhook in Chatwoot"
    )
    csetup.add_argument(
        "public_url", help="the bridge's public base URL, e.g. https://bridge.example.com"
    )
    chatwoot.set_defaults(func=cmd_chatwoot)

    conv = sub.add_parser("conversations", help="inspect a conversation")
    csub = conv.add_subparsers(dest="action", required=True)
    csub.add_parser("show").add_argument("id")
    conv.set_defaults(func=cmd_conversations)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        for line in exc.problems:
            print(f"configuration error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
