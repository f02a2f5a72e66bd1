"""All of the bridge's configuration, read from the environment in one place (12-factor).

Adapters read their own variables (ZENDESK_*, ...) through `Settings.environ`, and report
their problems through `Helpdesk.config_problems`, so start-up can list every problem at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from urllib.parse import urlparse

from bridge.errors import ConfigError

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_BOTPRESS_API_URL = "https://api.botpress.cloud"
#: Celery pools the Procfile's worker accepts (WORKER_POOL). Deliveries mostly wait on
#: remote HTTP calls, so gevent is the default: one process keeps hundreds of sends in
#: flight at a fraction of the CPU threads spend switching (docs/performance.md, "Latency
#: hidden"). The Procfile and the PUMPS default share the concurrency below, which suits
#: gevent only: the other pools need WORKER_CONCURRENCY set.
WORKER_POOLS = ("gevent", "threads", "prefork")
DEFAULT_WORKER_POOL = "gevent"
DEFAULT_WORKER_CONCURRENCY = 256
#: Redis connections a gevent worker keeps at most, whatever its concurrency, unless
#: REDIS_POOL_SIZE says otherwise (commands take microseconds, so a few dozen serve hundreds
#: of greenlets; hosted plans cap clients).
DEFAULT_REDIS_POOL_SIZE = 24
#: Downloads of chat files in flight per worker process, at most, unless FETCH_CONCURRENCY
#: says otherwise: each may hold FETCH_MAX_BYTES in memory.
DEFAULT_FETCH_CONCURRENCY_CAP = 8
DEFAULT_CONSOLE_FILE_TTL = 7 * 24 * 3600.0
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps")
#: Where the playground answers as Botpress's webhook and API, under PUBLIC_BASE_URL.
PLAYGROUND_PATH = "/playground"
PLAYGROUND_BOT_ID = "playground"
SECRET_RE = re.compile(r"^[A-Za-z0-9_\-]{16,200}$")
SECRET_HOWTO = (
    "generate one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))' "
    "and export BRIDGE_SECRET=<it>"
)


#: A secret with fewer different characters than this is refused, however long.
MIN_DISTINCT = 8


def guessable(value: str) -> str | None:
    """Why `value` is trivially guessable despite its length, or None.

    Length alone is not strength: `aaaa…` or `abcabc…` pass any length rule and fall to the
    first guesses of a brute force. A generated token (secrets.token_urlsafe) never trips this.
    """
    distinct = len(set(value))
    if distinct < MIN_DISTINCT:
        return f"uses only {distinct} different characters (at least {MIN_DISTINCT} needed)"
    n = len(value)
    for period in range(1, n // 2 + 1):
        if n % period == 0 and value == value[:period] * (n // period):
            return f"is a {period}-character pattern repeated"
    return None


def redis_connections_needed(environ: Mapping[str, str]) -> int:
    """Redis connections one `web`, one `worker` and `beat` hold with this environment,
    as measured (docs/operating.md, "Production Redis"): a gunicorn process its threads + 3,
    a worker 7 plus its concurrency (threads, prefork) or its REDIS_POOL_SIZE (gevent),
    beat 2."""

    def n(name: str, default: int) -> int:
        try:
            return max(1, int(environ.get(name, "") or default))
        except ValueError:
            return default

    web = n("WEB_CONCURRENCY", 2) * (n("WEB_THREADS", 4) + 3)
    worker = n("WORKER_CONCURRENCY", DEFAULT_WORKER_CONCURRENCY)
    if (environ.get("WORKER_POOL", "").strip() or DEFAULT_WORKER_POOL) == "gevent":
        worker = min(worker, n("REDIS_POOL_SIZE", DEFAULT_REDIS_POOL_SIZE))
    return web + worker + 7 + 2


# -- FETCH_*: downloads of URLs that came from chat messages (bridge/fetcher.py) -----------
DEFAULT_FETCH_DEADLINE = 20.0
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_ALLOW_ENTRY_RE = re.compile(r"\[([0-9a-f:.]+)\](?::(\d{1,5}))?|([^:\[\]]+)(?::(\d{1,5}))?")


@dataclass(frozen=True)
class AllowedHost:
    """One FETCH_ALLOW_HOSTS entry: a host (lower case, IPv6 without brackets) and the one
    port it may be fetched on (None: the usual port of the URL's scheme)."""

    host: str
    port: int | None = None


def parse_allow_hosts(raw: str) -> tuple[tuple[AllowedHost, ...], list[str]]:
    """Comma-separated `host[:port]` entries (IPv6 literals in brackets); one problem
    line per entry that is not one."""
    entries: list[AllowedHost] = []
    problems: list[str] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        entry = _allowed_host(item.lower())
        if entry is None:
            problems.append(
                f"FETCH_ALLOW_HOSTS entry {item!r} is not host or host:port "
                "(IPv6 addresses in brackets, ports from 1 to 65535)"
            )
        else:
            entries.append(entry)
    return tuple(entries), problems


def _allowed_host(item: str) -> AllowedHost | None:
    m = _ALLOW_ENTRY_RE.fullmatch(item)
    if m is None:
        return None
    v6, v6_port, name, name_port = m.groups()
    port = int(v6_port or name_port) if (v6_port or name_port) else None
    if port is not None and not 1 <= port <= 65535:
        return None
    # Addresses in canonical form, so that `[::1]` also matches `[0:0::1]` in a URL.
    try:
        if v6 is not None:
            return AllowedHost(str(ipaddress.IPv6Address(v6)), port)
        return AllowedHost(str(ipaddress.IPv4Address(name)), port)
    except ValueError:
        pass
    return AllowedHost(name, port) if v6 is None and _HOST_RE.fullmatch(name) else None


def _with_fetch_settings(
    settings: Settings,
    env: Mapping[str, str],
    number: Callable[[str, float, float], float],
    problems: list[str],
) -> Settings:
    allow, bad = parse_allow_hosts(env.get("FETCH_ALLOW_HOSTS", ""))
    problems += bad
    # A delivery's downloads happen under its lease, next to its helpdesk calls.
    room = settings.lease_seconds - 2 * settings.http_timeout
    if env.get("FETCH_DEADLINE_SECONDS", "").strip():
        deadline = number("FETCH_DEADLINE_SECONDS", DEFAULT_FETCH_DEADLINE, 0.1)
        if not deadline < room:  # NaN too
            problems.append(
                f"FETCH_DEADLINE_SECONDS must be shorter than LEASE_SECONDS minus twice "
                f"HTTP_TIMEOUT_SECONDS ({room:g}s), so a delivery with its downloads fits "
                "in its lease"
            )
    else:
        # Unset, it fits the lease by itself (the tests' short leases; a long HTTP timeout).
        deadline = min(DEFAULT_FETCH_DEADLINE, max(0.1, 0.8 * room))
    try:
        workers = int(env.get("WORKER_CONCURRENCY", "") or DEFAULT_WORKER_CONCURRENCY)
    except ValueError:
        workers = DEFAULT_WORKER_CONCURRENCY  # reported by PUMPS' check
    concurrency = max(1, min(workers // 4, DEFAULT_FETCH_CONCURRENCY_CAP))
    if raw := env.get("FETCH_CONCURRENCY", "").strip():
        if raw.isdigit() and int(raw) >= 1:
            concurrency = int(raw)
        else:
            problems.append(f"FETCH_CONCURRENCY={raw!r} must be a whole number, at least 1")
    return replace(
        settings,
        fetch_allow_hosts=allow,
        fetch_deadline=deadline,
        fetch_concurrency=concurrency,
    )


def signing_key(secret: str, purpose: str) -> bytes:
    """A key for one kind of signature (`purpose`), derived from BRIDGE_SECRET: web and
    workers derive the same one, and a signature made for one purpose fits no other."""
    return hmac.new(secret.encode(), f"hitl-bridge {purpose}".encode(), hashlib.sha256).digest()


def playground_token(secret: str) -> str:
    """The path token of the playground's webhook and API: derived from BRIDGE_SECRET, so
    web and workers agree on it and nobody who lacks the secret can post as an agent."""
    digest = hmac.new(secret.encode(), b"hitl-bridge playground", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def _with_public_settings(
    settings: Settings,
    env: Mapping[str, str],
    number: Callable[[str, float, float], float],
    problems: list[str],
) -> Settings:
    """PUBLIC_BASE_URL, CONSOLE_FILE_TTL_SECONDS and PLAYGROUND, which points Botpress's
    webhook and API at the playground."""
    base = env.get("PUBLIC_BASE_URL", "").strip().rstrip("/") or None
    if base is not None:
        parsed = urlparse(base)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query:
            problems.append(f"PUBLIC_BASE_URL must be an http(s) URL without a query ({base!r})")
    ttl = number("CONSOLE_FILE_TTL_SECONDS", DEFAULT_CONSOLE_FILE_TTL, 60)
    raw = env.get("PLAYGROUND", "").strip().lower()
    if raw not in ("", "0", "1", "false", "true", "no", "yes", "off", "on"):
        problems.append(f"PLAYGROUND={raw!r} must be 1 or 0")
    on = raw in ("1", "true", "yes", "on")
    settings = replace(settings, public_base_url=base, console_file_ttl=ttl, playground=on)
    if not on:
        return settings
    if base is None:
        problems.append(
            "PLAYGROUND=1 needs PUBLIC_BASE_URL (where the workers reach the playground, "
            "e.g. http://localhost:8000)"
        )
        return settings
    if not settings.bridge_secret:
        return settings
    here = f"{base}{PLAYGROUND_PATH}/botpress/{playground_token(settings.bridge_secret)}"
    if settings.botpress_webhook_url not in (None, f"{here}/webhook"):
        problems.append(
            "PLAYGROUND=1 plays Botpress, but BOTPRESS_WEBHOOK_URL points elsewhere "
            f"({settings.botpress_webhook_url}): unset one of them"
        )
    if settings.botpress_token or env.get("BOTPRESS_API_URL", "").strip():
        problems.append(
            "PLAYGROUND=1 plays Botpress's API too: unset BOTPRESS_TOKEN, BOTPRESS_BOT_ID "
            "and BOTPRESS_API_URL"
        )
    return replace(
        settings,
        botpress_webhook_url=f"{here}/webhook",
        botpress_api_url=f"{here}/api",
        botpress_token=playground_token(settings.bridge_secret),
        botpress_bot_id=PLAYGROUND_BOT_ID,
    )


def _with_live_settings(
    settings: Settings, env: Mapping[str, str], problems: list[str]
) -> Settings:
    """LIVE_PORT (the live process's; unset: PORT + 1, 8001 without PORT) and
    CONSOLE_EVENTS_URL (unset: /console/events on the console's own origin, which a proxy
    routes to the live process; `off`: consoles poll the web instead)."""
    raw = env.get("LIVE_PORT", "").strip()
    web = env.get("PORT", "").strip()
    port = int(web) + 1 if web.isdigit() and 0 < int(web) < 65535 else 8001
    if raw:
        if raw.isdigit() and 0 < int(raw) <= 65535:
            port = int(raw)
        else:
            problems.append(f"LIVE_PORT={raw!r} must be a port number (1 to 65535)")
    url = env.get("CONSOLE_EVENTS_URL", "").strip() or "/console/events"
    if url.lower() == "off":
        url = ""
    elif not url.startswith("/") or url.startswith("//"):
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query:
            problems.append(
                "CONSOLE_EVENTS_URL must be a path on the console's origin (/console/events), "
                f"an http(s) URL without a query, or off ({url!r})"
            )
    return replace(settings, live_port=port, console_events_url=url)


@dataclass(frozen=True)
class Settings:
    """Validated configuration; build it with `Settings.from_env`."""

    bridge_secret: str
    # Accepted beside bridge_secret while Botpress moves to a new URL (docs/security.md).
    bridge_secret_previous: str | None = None
    redis_url: str = DEFAULT_REDIS_URL
    # Celery's broker (CELERY_BROKER_URL): Redis above unless set; RabbitMQ (amqp://) works
    # too. Only wake-up tasks travel there: events always live in Redis.
    celery_broker_url: str | None = None
    # Heroku Redis uses a self-signed certificate: REDIS_SSL_CERT_REQS=none there.
    redis_ssl_cert_reqs: str = "required"
    botpress_webhook_url: str | None = None
    botpress_api_url: str = DEFAULT_BOTPRESS_API_URL
    botpress_token: str | None = None
    botpress_bot_id: str | None = None
    helpdesk: str = "inbox"
    admin_token: str | None = None
    key_prefix: str = "hb"
    # Seconds. Webhook senders retry for a day or more; so do we (DESIGN.md §6).
    retry_window: float = 48 * 3600
    retry_base: float = 1.0
    retry_cap: float = 1800.0
    # Outbound HTTP timeout; well under Heroku's 30 s SIGTERM-to-SIGKILL grace.
    http_timeout: float = 10.0
    # Per-conversation lease; must outlive the slowest helpdesk call.
    lease_seconds: float = 45.0
    # Pump tasks that may run at once: the total worker concurrency across machines.
    pumps: int = DEFAULT_WORKER_CONCURRENCY
    # Reverse proxies in front of `web` whose X-Forwarded-For/-Proto entries are trusted:
    # the client address that failed logins are counted by.
    proxy_hops: int = 0
    #: Redis connections of a gevent worker, shared by all its greenlets (REDIS_POOL_SIZE).
    redis_pool_size: int = DEFAULT_REDIS_POOL_SIZE
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    # URLs from chat messages (bridge/fetcher.py): hosts that may be private, the
    # wall-clock deadline of one delivery's downloads, downloads in flight per process.
    fetch_allow_hosts: tuple[AllowedHost, ...] = ()
    fetch_deadline: float = DEFAULT_FETCH_DEADLINE
    fetch_concurrency: int = DEFAULT_FETCH_CONCURRENCY_CAP
    # Where end users and workers reach the web process: files agents send from the inbox
    # console are served under it, and the playground's webhook is at it.
    public_base_url: str | None = None
    # Seconds the inbox keeps a file an agent sent (its signed URL expires with it).
    console_file_ttl: float = DEFAULT_CONSOLE_FILE_TTL
    # PLAYGROUND=1: the web process plays Botpress at /playground/ (bridge/playground/).
    playground: bool = False
    # The live process (bridge/helpdesks/inbox/live.py): the port it listens on, and where
    # console pages open its event stream ('' = CONSOLE_EVENTS_URL=off: pages poll the web).
    live_port: int = 8001
    console_events_url: str = "/console/events"
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @property
    def broker_url(self) -> str:
        """Where Celery's tasks travel: CELERY_BROKER_URL, else the bridge's Redis."""
        return self.celery_broker_url or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the environment; raise ConfigError listing every problem."""
        env = dict(os.environ if environ is None else environ)
        problems: list[str] = []

        def number(name: str, default: float, minimum: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                problems.append(f"{name}={raw!r} is not a number")
                return default
            if value < minimum:
                problems.append(f"{name}={raw!r} must be at least {minimum:g}")
            return value

        secret = env.get("BRIDGE_SECRET", "").strip()
        if not secret:
            problems.append(f"BRIDGE_SECRET is not set: {SECRET_HOWTO}")
        elif not SECRET_RE.match(secret):
            problems.append(
                "BRIDGE_SECRET must be 16 or more URL-safe characters (A-Z a-z 0-9 _ -): "
                + SECRET_HOWTO
            )
        elif why := guessable(secret):
            problems.append(f"BRIDGE_SECRET {why}: it is trivially guessable; {SECRET_HOWTO}")
        previous = env.get("BRIDGE_SECRET_PREVIOUS", "").strip() or None
        if previous is not None:
            if not SECRET_RE.match(previous) or guessable(previous):
                problems.append(
                    "BRIDGE_SECRET_PREVIOUS must be a secret BRIDGE_SECRET could have been "
                    "(16+ URL-safe characters, not trivially guessable)"
                )
            elif previous == secret:
                problems.append("BRIDGE_SECRET_PREVIOUS is the same as BRIDGE_SECRET: unset it")

        # Heroku exposes the TLS endpoint as REDIS_TLS_URL next to REDIS_URL.
        redis_url = (
            env.get("REDIS_TLS_URL", "").strip()
            or env.get("REDIS_URL", "").strip()
            or DEFAULT_REDIS_URL
        )
        if urlparse(redis_url).scheme not in ("redis", "rediss", "unix"):
            problems.append(
                f"REDIS_URL must start with redis://, rediss:// or unix:// ({redis_url!r})"
            )
        broker = env.get("CELERY_BROKER_URL", "").strip() or None
        if broker is not None and urlparse(broker).scheme not in BROKER_SCHEMES:
            problems.append(
                "CELERY_BROKER_URL must start with one of "
                f"{', '.join(s + '://' for s in BROKER_SCHEMES)} (unset: REDIS_URL)"
            )
        cert_reqs = env.get("REDIS_SSL_CERT_REQS", "required").strip().lower() or "required"
        if cert_reqs not in ("required", "optional", "none"):
            problems.append("REDIS_SSL_CERT_REQS must be one of required, optional, none")

        def url(name: str, default: str | None) -> str | None:
            raw = env.get(name, "").strip() or default
            if raw is None:
                return None
            parsed = urlparse(raw)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                problems.append(f"{name} must be an http(s) URL ({raw!r})")
            return raw.rstrip("/")

        webhook = url("BOTPRESS_WEBHOOK_URL", None)
        api_url = url("BOTPRESS_API_URL", DEFAULT_BOTPRESS_API_URL) or DEFAULT_BOTPRESS_API_URL
        token = env.get("BOTPRESS_TOKEN", "").strip() or None
        bot_id = env.get("BOTPRESS_BOT_ID", "").strip() or None
        if bool(token) != bool(bot_id):
            problems.append("BOTPRESS_TOKEN and BOTPRESS_BOT_ID go together: set both or neither")

        helpdesk = env.get("HELPDESK", "inbox").strip().lower() or "inbox"
        admin_token = env.get("ADMIN_TOKEN", "").strip() or None
        if admin_token is not None and len(admin_token) < 16:
            problems.append("ADMIN_TOKEN must be at least 16 characters")
        elif admin_token is not None and (why := guessable(admin_token)):
            problems.append(
                f"ADMIN_TOKEN {why}: it is trivially guessable; generate one with: python3 -c "
                "'import secrets; print(secrets.token_urlsafe(32))'"
            )
        prefix = env.get("REDIS_KEY_PREFIX", "hb").strip() or "hb"
        pool = env.get("WORKER_POOL", "").strip() or DEFAULT_WORKER_POOL
        if pool not in WORKER_POOLS:
            problems.append(f"WORKER_POOL must be one of {', '.join(WORKER_POOLS)} ({pool!r})")
        elif pool != DEFAULT_WORKER_POOL and not env.get("WORKER_CONCURRENCY", "").strip():
            # The default (256) is greenlets: as threads it burns CPU switching, as
            # processes it is 256 copies of the worker.
            problems.append(
                f"WORKER_POOL={pool} needs WORKER_CONCURRENCY: the default "
                f"({DEFAULT_WORKER_CONCURRENCY}) suits gevent only; e.g. 16 threads, or as "
                "many processes as cores"
            )
        log_level = env.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if log_level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            problems.append("LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR")

        settings = cls(
            bridge_secret=secret,
            bridge_secret_previous=previous,
            redis_url=redis_url,
            celery_broker_url=broker,
            redis_ssl_cert_reqs=cert_reqs,
            botpress_webhook_url=webhook,
            botpress_api_url=api_url,
            botpress_token=token,
            botpress_bot_id=bot_id,
            helpdesk=helpdesk,
            admin_token=admin_token,
            key_prefix=prefix,
            retry_window=number("RETRY_WINDOW_SECONDS", 48 * 3600, 60),
            retry_base=number("RETRY_BASE_SECONDS", 1.0, 0.01),
            retry_cap=number("RETRY_CAP_SECONDS", 1800.0, 0.01),
            http_timeout=number("HTTP_TIMEOUT_SECONDS", 10.0, 0.1),
            lease_seconds=number("LEASE_SECONDS", 45.0, 1),
            pumps=int(
                number("PUMPS", number("WORKER_CONCURRENCY", DEFAULT_WORKER_CONCURRENCY, 1), 1)
            ),
            proxy_hops=int(number("PROXY_HOPS", 0, 0)),
            redis_pool_size=int(number("REDIS_POOL_SIZE", DEFAULT_REDIS_POOL_SIZE, 2)),
            log_level=log_level,
            environ=env,
        )
        if settings.http_timeout * 2 >= settings.lease_seconds:
            problems.append(
                "LEASE_SECONDS must be more than twice HTTP_TIMEOUT_SECONDS "
                "(a conversation's lease must outlive its slowest call)"
            )
        settings = _with_fetch_settings(settings, env, number, problems)
        settings = _with_public_settings(settings, env, number, problems)
        settings = _with_live_settings(settings, env, problems)
        if problems:
            raise ConfigError(problems)
        return settings
