"""The agent console at /console/: server-rendered pages, a little JavaScript
(static/console.js) for Enter-to-send and live updates, and the sent files' URLs.

Live updates come from the live process (live.py): server-sent events carrying the
rendered parts (parts.py), opened at CONSOLE_EVENTS_URL. Where that stream cannot be had
(no live process, CONSOLE_EVENTS_URL=off), the page polls: `/console/live`, one Redis GET,
twice a second, and `/console/parts` when the inbox's version moved. docs/performance.md
says why (the measurement).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlencode, urlparse

from flask import (
    Blueprint,
    Response,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge

from bridge.helpdesks.inbox import login
from bridge.helpdesks.inbox import parts as fragments
from bridge.helpdesks.inbox.agents import NAME_RE, Agents
from bridge.helpdesks.inbox.desk import VIEWS, Desk, DeskError, View, waited
from bridge.helpdesks.inbox.files import MAX_FILE_BYTES, FileRefused, Files
from bridge.helpdesks.inbox.parts import web_url
from bridge.web import EXTENSION, runtime
from bridge.web.auth import failed, throttled

F = TypeVar("F", bound=Callable[..., Any])

#: How often open consoles ask whether anything changed when they poll (milliseconds;
#: console.js, without the live process's stream).
POLL_MS = 500
CSP = (
    "default-src 'self'; img-src 'self' https: data:; media-src 'self' https:; "
    "script-src 'self'; style-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


def csp(events_url: str) -> str:
    """The console's Content-Security-Policy: with the event stream on another origin
    (CONSOLE_EVENTS_URL), pages may connect there too."""
    origin = origin_of(events_url)
    return f"{CSP}; connect-src 'self' {origin}" if origin else CSP


def origin_of(url: str) -> str:
    """scheme://host[:port] of an absolute http(s) URL, else ''."""
    parsed = urlparse(url)
    if parsed.scheme in ("http", "https") and parsed.netloc:
        return f"{parsed.scheme}://{parsed.netloc}"
    return ""


blueprint = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
)
files_blueprint = Blueprint("inbox_files", __name__, url_prefix="/inbox/files")


@blueprint.record_once
def _setup(state: Any) -> None:
    login.configure(state.app, state.app.extensions[EXTENSION].settings)
    state.app.jinja_env.filters["waited"] = waited
    state.app.jinja_env.filters["web_url"] = web_url


@blueprint.before_request
def _body_cap() -> None:
    # The reply box carries files; every other route keeps the app's cap. Set before the
    # CSRF check reads the form.
    if request.endpoint and request.endpoint.endswith(".reply"):
        request.max_content_length = MAX_FILE_BYTES + 64 * 1024


@blueprint.after_request
def _headers(resp: Response) -> Response:
    resp.headers["Content-Security-Policy"] = csp(runtime().settings.console_events_url)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _desk() -> Desk:
    return Desk(runtime().store)


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json" or request.path.endswith(
        ("/live", "/parts")
    )


def _refuse(status: int, message: str) -> ResponseReturnValue:
    if _wants_json():
        return jsonify({"error": message}), status
    return render_template("console/problem.html", status=status, message=message), status


def agent_required(view: F) -> F:
    """The signed-in agent in `g.agent`; state changes also need the session's CSRF token."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        claim = login.claimed()
        if claim is None or Agents(runtime().store).version(claim[0]) != claim[1]:
            login.sign_out()
            if _wants_json():
                return jsonify({"error": "sign in at /console/login"}), 401
            return redirect(url_for(".sign_in", next=request.full_path.rstrip("?")))
        if request.method == "POST" and not login.csrf_ok(request):
            return _refuse(403, "this form expired or came from another site: reload the page")
        g.agent = claim[0]
        return view(*args, **kwargs)

    return cast(F, guarded)


# -- signing in ---------------------------------------------------------------------------
def _safe_next(target: str | None) -> str:
    # Only a path of this console: never an open redirect to another site.
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return url_for(".home")


@blueprint.get("/login")
def sign_in() -> ResponseReturnValue:
    return render_template(
        "console/login.html", csrf=login.csrf_token(), next=request.args.get("next", "")
    )


@blueprint.post("/login")
def sign_in_post() -> ResponseReturnValue:
    refused = throttled("login")
    if refused is not None:
        resp, status = refused
        return (
            render_template(
                "console/login.html",
                csrf=login.csrf_token(),
                next="",
                problem="Too many failed sign-ins from this address: wait a minute.",
            ),
            status,
            {"Retry-After": resp.headers["Retry-After"]},
        )
    if not login.csrf_ok(request):
        return _refuse(403, "this form expired: reload the sign-in page")
    name = request.form.get("agent", "").strip()
    password = request.form.get("password", "")
    agent = Agents(runtime().store).verify(name, password)
    if agent is None:
        failed("login")
        problem = "Unknown agent or wrong password."
        page = render_template(
            "console/login.html",
            csrf=login.csrf_token(),
            next=request.form.get("next", ""),
            problem=problem,
            agent=name,
        )
        return page, 401
    login.sign_in(agent.name, agent.version)
    return redirect(_safe_next(request.form.get("next")))


@blueprint.post("/logout")
@agent_required
def sign_out() -> ResponseReturnValue:
    login.sign_out()
    return redirect(url_for(".sign_in"))


# -- the console --------------------------------------------------------------------------
def _view() -> View:
    return fragments.view_of(request.args.get("view"))


def _parts(view: View, tid: str | None, since: int | None = None) -> dict[str, Any]:
    """What the page shows (parts.py)."""
    return fragments.context(runtime().store, g.agent, view, tid, since)


@blueprint.get("/")
@agent_required
def home() -> ResponseReturnValue:
    tid = request.args.get("c") or None
    parts = _parts(_view(), tid)
    if tid and parts["ticket"] is None:
        flash(f"No conversation {tid}.")
        return redirect(f"{url_for('.home')}?{urlencode({'view': parts['view']})}")
    return render_template(
        "console/console.html",
        csrf=login.csrf_token(),
        poll_ms=POLL_MS,
        events_url=runtime().settings.console_events_url,
        max_file_mib=MAX_FILE_BYTES // (1024 * 1024),
        files_on=bool(runtime().settings.public_base_url),
        # Only the whole page has the assign and saved-reply forms.
        agents=[a.name for a in Agents(runtime().store).list()],
        replies=_desk().saved_replies(),
        **parts,
    )


@blueprint.get("/parts")
@agent_required
def parts() -> ResponseReturnValue:
    """The changing parts of the page, for live updates. With `since` (the inbox version
    the page shows), `conversation` is null when the open one has not changed since: the
    page keeps what it has."""
    since = request.args.get("since", "")
    tid = request.args.get("c") or None
    return jsonify(fragments.render(_parts(_view(), tid, int(since) if since.isdigit() else None)))


@blueprint.get("/live")
def live() -> ResponseReturnValue:
    """The inbox's version: one Redis GET. The signed cookie is enough here (a counter
    reveals nothing), which keeps fifty open consoles cheap."""
    if login.claimed() is None:
        return jsonify({"error": "sign in at /console/login"}), 401
    return jsonify({"v": _desk().version()})


def _back(tid: str, view: str = "") -> ResponseReturnValue:
    view = view or request.form.get("view", "")
    query = {"view": view} if view in VIEWS else {}
    return redirect(f"{url_for('.home')}?{urlencode({**query, 'c': tid})}")


def _done(tid: str, fn: Callable[[], Any], view: str = "") -> ResponseReturnValue:
    try:
        action = fn()
    except DeskError as exc:
        if _wants_json():
            return jsonify({"error": str(exc)}), exc.status
        flash(str(exc))
        return _back(tid)
    if action is not None and action.rings:
        runtime().ring(tid)
    if _wants_json():
        return jsonify({"ok": True})
    return _back(tid, view)


def _text(field: str = "text") -> str:
    # Browsers submit a textarea's line breaks as CRLF; the user's chat shows LF.
    return request.form.get(field, "").replace("\r\n", "\n")


@blueprint.post("/c/<tid>/reply")
@agent_required
def reply(tid: str) -> ResponseReturnValue:
    try:
        upload = request.files.get("file")
        text = _text()
    except RequestEntityTooLarge:
        return _refuse(413, f"file: at most {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    desk = _desk()
    if upload is None or not upload.filename:
        return _done(tid, lambda: desk.act(tid, "message", g.agent, text=text))
    data = upload.read(MAX_FILE_BYTES + 1)
    try:
        sent = Files(runtime().settings, runtime().store).put(
            data, upload.filename, upload.mimetype or "", g.agent
        )
    except FileRefused as exc:
        return _refuse(exc.status, str(exc))

    def both() -> Any:
        # The text first, then the file: the order the agent wrote them in. One doorbell
        # carries both: the worker reads every change since its cursor.
        if text.strip():
            desk.act(tid, "message", g.agent, text=text)
        return desk.act(
            tid, "message", g.agent, message_type=sent.message_type, payload=sent.payload
        )

    return _done(tid, both)


@blueprint.post("/c/<tid>/note")
@agent_required
def note(tid: str) -> ResponseReturnValue:
    text = _text()
    return _done(tid, lambda: _desk().act(tid, "note", g.agent, text=text))


@blueprint.post("/c/<tid>/assign")
@agent_required
def assign(tid: str) -> ResponseReturnValue:
    assignee = request.form.get("assignee", "").strip() or g.agent
    # A name agents can have, or no lookup at all.
    if not NAME_RE.fullmatch(assignee) or Agents(runtime().store).version(assignee) is None:
        return _refuse(400, f"assignee: no agent {assignee}")
    # The conversation leaves "unassigned": follow it to where it went.
    view = "mine" if assignee == g.agent else "open"
    return _done(tid, lambda: _desk().act(tid, "assign", g.agent, assignee=assignee), view)


@blueprint.post("/c/<tid>/close")
@agent_required
def close(tid: str) -> ResponseReturnValue:
    return _done(tid, lambda: _desk().act(tid, "close", g.agent))


# -- saved replies --------------------------------------------------------------------------
@blueprint.get("/replies")
@agent_required
def replies() -> ResponseReturnValue:
    return render_template(
        "console/replies.html",
        csrf=login.csrf_token(),
        replies=_desk().saved_replies(),
        agent=g.agent,
    )


@blueprint.post("/replies")
@agent_required
def save_reply() -> ResponseReturnValue:
    try:
        _desk().save_reply(request.form.get("title", ""), _text())
    except DeskError as exc:
        flash(str(exc))
    return redirect(url_for(".replies"))


@blueprint.post("/replies/delete")
@agent_required
def delete_reply() -> ResponseReturnValue:
    _desk().delete_reply(request.form.get("title", ""))
    return redirect(url_for(".replies"))


# -- the files agents sent -------------------------------------------------------------------
@files_blueprint.get("/<token>/<path:name>")
def sent_file(token: str, name: str) -> ResponseReturnValue:
    """A file an agent sent, to whoever holds its signed URL until it expires."""
    found = Files(runtime().settings, runtime().store).get(token)
    if found is None:
        return jsonify({"error": "no such file, or its link expired"}), 404
    resp = Response(found.data, mimetype=found.content_type)
    disposition = "inline" if found.inline else "attachment"
    quoted = quote(found.name, safe="")
    resp.headers["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quoted}"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.headers["Cache-Control"] = f"private, max-age={max(0, found.expires - int(time.time()))}"
    return resp
