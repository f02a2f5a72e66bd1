"""The Zendesk adapter's environment variables, read and checked in one place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlparse

from bridge.errors import ConfigError

DEFAULT_POLL_INTERVAL = 60.0
#: Zendesk's incremental export takes 10 requests a minute per account: polling more often
#: would only collect 429s.
MIN_POLL_INTERVAL = 6.0
DEFAULT_MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
# Agents' files on accounts with private attachments, served by the web process: how long
# a link works, and how long relaying one file from Zendesk may take.
DEFAULT_FILE_LINK_TTL = 7 * 24 * 3600
DEFAULT_FILE_DEADLINE = 60.0
# Zendesk accepts 300 < expires_in < 172800 for grant-type tokens.
DEFAULT_OAUTH_TOKEN_TTL = 7200
OAUTH_SCOPE = "read write"
#: API requests per minute the bridge allows itself on the account, all processes together:
#: the Team plan's published limit (Zendesk's answers lower it when the account has less).
DEFAULT_RATE_LIMIT = 200
_SUBDOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

AuthKind = Literal["api_token", "oauth_token", "oauth_client"]


@dataclass(frozen=True)
class ZendeskConfig:
    """Where Zendesk is and how the bridge authenticates to it."""

    base_url: str
    auth: AuthKind
    email: str = ""
    api_token: str = ""
    oauth_token: str = ""
    client_id: str = ""
    client_secret: str = ""
    redirect_uri: str = ""
    webhook_secret: str = ""
    poll_interval: float = DEFAULT_POLL_INTERVAL
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
    oauth_token_ttl: int = DEFAULT_OAUTH_TOKEN_TTL
    rate_limit: int = DEFAULT_RATE_LIMIT
    file_link_ttl: int = DEFAULT_FILE_LINK_TTL
    file_deadline: float = DEFAULT_FILE_DEADLINE

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ZendeskConfig:
        """Build the configuration; raises ConfigError listing every problem."""
        problems = config_problems(environ)
        if problems:
            raise ConfigError(problems)
        env = _clean(environ)
        if env.get("ZENDESK_OAUTH_CLIENT_ID"):
            auth: AuthKind = "oauth_client"
        elif env.get("ZENDESK_OAUTH_TOKEN"):
            auth = "oauth_token"
        else:
            auth = "api_token"
        return cls(
            base_url=_base_url(env),
            auth=auth,
            email=env.get("ZENDESK_EMAIL", ""),
            api_token=env.get("ZENDESK_API_TOKEN", ""),
            oauth_token=env.get("ZENDESK_OAUTH_TOKEN", ""),
            client_id=env.get("ZENDESK_OAUTH_CLIENT_ID", ""),
            client_secret=env.get("ZENDESK_OAUTH_CLIENT_SECRET", ""),
            redirect_uri=env.get("ZENDESK_OAUTH_REDIRECT_URI", ""),
            webhook_secret=env.get("ZENDESK_WEBHOOK_SECRET", ""),
            poll_interval=float(env.get("ZENDESK_POLL_INTERVAL") or DEFAULT_POLL_INTERVAL),
            max_attachment_bytes=int(
                env.get("ZENDESK_MAX_ATTACHMENT_BYTES") or DEFAULT_MAX_ATTACHMENT_BYTES
            ),
            oauth_token_ttl=int(env.get("ZENDESK_OAUTH_TOKEN_TTL") or DEFAULT_OAUTH_TOKEN_TTL),
            rate_limit=int(env.get("ZENDESK_RATE_LIMIT") or DEFAULT_RATE_LIMIT),
            file_link_ttl=int(env.get("ZENDESK_FILE_LINK_TTL_SECONDS") or DEFAULT_FILE_LINK_TTL),
            file_deadline=float(env.get("ZENDESK_FILE_DEADLINE_SECONDS") or DEFAULT_FILE_DEADLINE),
        )


def _clean(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v.strip() for k, v in environ.items() if k.startswith("ZENDESK_")}


def _base_url(env: Mapping[str, str]) -> str:
    url = env.get("ZENDESK_URL", "")
    if url:
        return url.rstrip("/")
    return f"https://{env['ZENDESK_SUBDOMAIN'].lower()}.zendesk.com"


def config_problems(environ: Mapping[str, str]) -> list[str]:
    """One clear line per problem in the ZENDESK_* variables."""
    env = _clean(environ)
    problems: list[str] = []

    url, sub = env.get("ZENDESK_URL", ""), env.get("ZENDESK_SUBDOMAIN", "")
    if url:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            problems.append(f"ZENDESK_URL must be an http(s) URL ({url!r})")
    elif sub:
        if not _SUBDOMAIN_RE.match(sub.lower()):
            problems.append(
                f"ZENDESK_SUBDOMAIN must be the bare subdomain, e.g. 'acme' for "
                f"acme.zendesk.com ({sub!r})"
            )
    else:
        problems.append(
            "ZENDESK_SUBDOMAIN (e.g. 'acme' for acme.zendesk.com) or ZENDESK_URL must be set"
        )

    email, token = env.get("ZENDESK_EMAIL", ""), env.get("ZENDESK_API_TOKEN", "")
    bearer = env.get("ZENDESK_OAUTH_TOKEN", "")
    cid, csecret = (
        env.get("ZENDESK_OAUTH_CLIENT_ID", ""),
        env.get("ZENDESK_OAUTH_CLIENT_SECRET", ""),
    )
    if bool(cid) != bool(csecret):
        problems.append(
            "ZENDESK_OAUTH_CLIENT_ID and ZENDESK_OAUTH_CLIENT_SECRET go together: "
            "set both or neither"
        )
    if bool(email) != bool(token) and not (cid and csecret) and not bearer:
        problems.append("ZENDESK_EMAIL and ZENDESK_API_TOKEN go together: set both or neither")
    if not (email or token or bearer or cid or csecret):
        problems.append(
            "no Zendesk credentials: set ZENDESK_OAUTH_CLIENT_ID + ZENDESK_OAUTH_CLIENT_SECRET "
            "(recommended), or ZENDESK_OAUTH_TOKEN, or ZENDESK_EMAIL + ZENDESK_API_TOKEN"
        )

    redirect = env.get("ZENDESK_OAUTH_REDIRECT_URI", "")
    if redirect and (why := redirect_uri_problem(redirect)):
        problems.append(f"ZENDESK_OAUTH_REDIRECT_URI {why} ({redirect!r})")

    def number(name: str, minimum: float, maximum: float | None = None) -> None:
        raw = env.get(name, "")
        if not raw:
            return
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a number")
            return
        if value != value or value < minimum or (maximum is not None and value > maximum):
            upper = f" and at most {maximum:g}" if maximum is not None else ""
            problems.append(f"{name}={raw!r} must be at least {minimum:g}{upper}")

    def integer(name: str, minimum: int, maximum: int) -> None:
        raw = env.get(name, "")
        if raw and not raw.isdigit():
            problems.append(f"{name}={raw!r} is not a whole number")
        else:
            number(name, minimum, maximum)

    number("ZENDESK_POLL_INTERVAL", 0)
    poll = env.get("ZENDESK_POLL_INTERVAL", "")
    try:
        too_often = 0 < float(poll or DEFAULT_POLL_INTERVAL) < MIN_POLL_INTERVAL
    except ValueError:
        too_often = False  # reported above
    if too_often:
        problems.append(
            f"ZENDESK_POLL_INTERVAL={poll!r} must be 0 (off) or at least {MIN_POLL_INTERVAL:g} "
            "seconds: Zendesk's incremental export takes 10 requests a minute"
        )
    integer("ZENDESK_MAX_ATTACHMENT_BYTES", 1, 50 * 1024 * 1024)
    integer("ZENDESK_OAUTH_TOKEN_TTL", 301, 172_799)
    integer("ZENDESK_RATE_LIMIT", 1, 100_000)
    integer("ZENDESK_FILE_LINK_TTL_SECONDS", 60, 365 * 24 * 3600)
    number("ZENDESK_FILE_DEADLINE_SECONDS", 1, 3600)
    return problems


def redirect_uri_problem(uri: str) -> str:
    """Why Zendesk would refuse `uri` as an OAuth client's redirect URL ('' when it would
    not): absolute, and https unless the host is localhost or 127.0.0.1."""
    try:
        parsed = urlparse(uri)
        host = parsed.hostname or ""
    except ValueError:
        return "is not a URL"
    if parsed.scheme not in ("http", "https") or not host:
        return "must be an absolute http(s) URL"
    if parsed.scheme == "http" and host not in ("localhost", "127.0.0.1"):
        return "must be https (plain http only for localhost or 127.0.0.1)"
    if parsed.fragment:
        return "must have no #fragment"
    return ""
