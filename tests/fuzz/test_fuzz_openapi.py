"""Property-based fuzz of every public route, driven by the bridge's own /openapi.json.

Schemathesis turns each operation of the document into a Hypothesis strategy, in both of
its modes: requests that fit the schemas and requests that break them. Whatever arrives,
the bridge must never answer 5xx, every answer must match the document, and every 4xx
must be the JSON error body `{"error": <string>, "details": <any>}`.

The app runs in-process on fakeredis with a publisher that only records, so the fuzz
exercises validation, storage scripts and error handling without the network.
"""

from __future__ import annotations

import json
import string
from collections import Counter
from typing import Any

import fakeredis
import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.app import create_app
from bridge.config import Settings
from bridge.helpdesks.inbox import InboxHelpdesk
from bridge.runtime import Runtime
from bridge.storage import Store
from tests.conftest import ADMIN_TOKEN, SECRET

pytestmark = pytest.mark.fuzz

#: Examples per (operation, mode); most operations take bodies, so this is 2,000+ in all.
EXAMPLES = 200
MINIMUM_REQUESTS = 2000
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def make_app() -> Flask:
    settings = Settings.from_env(
        {
            "BRIDGE_SECRET": SECRET,
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "BOTPRESS_WEBHOOK_URL": "http://botpress.invalid/hook",
        }
    )
    store = Store(fakeredis.FakeRedis(decode_responses=True))
    runtime = Runtime(settings, store, InboxHelpdesk(settings, store), lambda s, c: None)
    return create_app(runtime=runtime)


APP = make_app()
SCHEMA = schemathesis.openapi.from_wsgi("/openapi.json", APP)
OPERATIONS = {op.ok().label: op.ok() for op in SCHEMA.get_all_operations()}
sent: Counter[str] = Counter()
#: Characters a client may put in a path segment unencoded (RFC 3986 pchar, less "%").
PATH_SAFE = string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@"


def assert_error_body(status: int, raw: bytes, content_type: str | None) -> None:
    assert (content_type or "").startswith("application/json"), (status, content_type, raw[:200])
    body = json.loads(raw)
    assert isinstance(body, dict) and set(body) == {"error", "details"}, (status, body)
    assert isinstance(body["error"], str) and body["error"], (status, body)


def content_type(response: Any) -> str:
    values = response.headers.get("content-type") or response.headers.get("Content-Type") or [""]
    return str(values[0] if isinstance(values, list) else values)


def check(case: Any) -> None:
    if case.operation.path.startswith("/admin/"):
        # Past the guard, so the handlers are what the fuzz exercises (test_auth covers it).
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = case.call()
    sent[case.operation.label] += 1
    raw = response.content
    assert response.status_code < 500, (case.operation.label, response.status_code, raw[:500])
    if 400 <= response.status_code < 500:
        assert_error_body(response.status_code, raw, content_type(response))
    case.validate_response(response, checks=CHECKS)


def test_document_covers_the_public_routes() -> None:
    routes = {str(rule) for rule in APP.url_map.iter_rules() if rule.endpoint != "static"}
    documented = set(APP.test_client().get("/openapi.json").get_json()["paths"])
    # The inbox's agent API, its console and the playground are pages and forms for
    # browsers and people (tests/unit/test_console.py, test_playground.py, tests/browser/).
    pages = ("/inbox", "/console", "/playground")
    public = {r.replace("<", "{").replace(">", "}") for r in routes if not r.startswith(pages)}
    assert public - {"/botpress/{secret}/{route}"} <= documented
    assert {f"/botpress/{{secret}}/{r}" for r in ("ping", "botSendsMessage")} <= documented


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_route_answers_5xx(label: str, mode: GenerationMode) -> None:
    operation = OPERATIONS[label]
    fixed = {"secret": SECRET} if "{secret}" in operation.path else None
    try:
        strategy = operation.as_strategy(mode, path_parameters=fixed)
    except Exception as exc:  # an operation with nothing to break has no negative mode
        pytest.skip(f"no {mode.value} cases for {label}: {exc}")

    @given(case=strategy)
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        check(case)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        pytest.skip(f"{label} takes no input to break")


@pytest.mark.parametrize("label", sorted(k for k in OPERATIONS if "{secret}" in k))
def test_wrong_secret_is_404_json(label: str) -> None:
    """With any other secret, every Botpress route is a JSON 404 that touches nothing."""

    @given(case=OPERATIONS[label].as_strategy(), secret=st.text(PATH_SAFE, min_size=1, max_size=40))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def run(case: Any, secret: str) -> None:
        if secret == SECRET:
            return
        case.path_parameters = {"secret": secret}
        response = case.call()
        sent[label] += 1
        assert response.status_code in (404, 405), (secret, response.status_code)
        assert_error_body(response.status_code, response.content, content_type(response))

    run()


def test_enough_requests_were_sent() -> None:
    """Runs after the fuzz above (file order): the run must have sent 2,000 or more."""
    if not sent:
        pytest.skip("the fuzz tests did not run in this session (selected alone?)")
    total = sum(sent.values())
    print(f"fuzz requests: {total} {dict(sent)}")
    assert total >= MINIMUM_REQUESTS, dict(sent)
