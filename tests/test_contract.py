"""The OpenAPI contract: generated from the code, served, and fuzzed by Schemathesis against the running API."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import Api, credit

from local_runner import openapi

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "layers" / "common" / "echo_control" / "openapi.json"
CONTRACT = Path(__file__).resolve().parent / "contract"


def test_checked_in_document_matches_the_code() -> None:
    assert DOCUMENT.read_text(encoding="utf-8") == openapi.render(), "the API changed: run `make openapi`"


def test_document_is_served_with_this_deployment_as_server(live_server: str) -> None:
    response = requests.get(f"{live_server}/api/openapi.json", timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    served = response.json()
    assert served["openapi"].startswith("3.1")
    assert served["paths"] == json.loads(DOCUMENT.read_text())["paths"]
    assert served["servers"] == [{"url": "/", "description": "This deployment"}]


def test_every_api_route_in_the_template_is_documented() -> None:
    from local_runner import template

    documented = {
        (method.upper(), path) for path, item in json.loads(DOCUMENT.read_text())["paths"].items() for method in item
    }
    served = {(r.method, r.path) for r in template.load().routes if r.path.startswith("/api/")}
    assert served - documented == {("GET", "/api/openapi.json"), ("GET", "/api/docs")}


def _schemathesis(live_server: str, token: str, report: Path, *only: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "hooks", "PYTHONPATH": str(CONTRACT)}
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONTRACT / "schemathesis.toml"),
        "run",
        str(DOCUMENT),
        "--url",
        live_server,
        "--header",
        f"Authorization: Bearer {token}",
        "--seed",
        "20261124",
        "--report",
        "junit",
        "--report-junit-path",
        str(report),
        "--no-color",
        "--output-sanitize",
        "false",
        *only,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)


@pytest.mark.parametrize("credential", ["user session", "API key"])
def test_schemathesis_finds_nothing(
    credential: str, api: Api, live_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All of Schemathesis's checks (server errors, schema and status conformance, negative and positive data,
    ignored auth, use after free, unsupported methods …) over all its phases, as one user, then as one API key."""
    # ~1,300 requests a run: the per-key limit (tested in test_limits_and_faults.py) would turn most into 429s.
    monkeypatch.setenv("ECHO_RATE_LIMIT_PER_MINUTE", "1000000")
    holder = api.sign_in()
    token = holder.token
    if credential == "API key":
        app = holder.create_app("Fuzzed app")
        created = holder.create_key(app["id"])
        token = created["key"]
        credit(holder.user["id"], "50")
    result = _schemathesis(live_server, token, tmp_path / "junit.xml")
    report = ROOT / "test-output" / f"schemathesis-{credential.replace(' ', '-')}.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"Schemathesis found problems (full report: {report}):\n" + result.stdout[-6000:]
    if credential == "API key":  # and once deleted, the key stops working on the very next request
        assert holder.call("DELETE", f"/api/api-keys/{created['id']}").status == 200
        assert api.call("GET", "/api/me", token).status == 401


def test_schemathesis_finds_nothing_at_the_oauth_endpoints(api: Api, live_server: str, tmp_path: Path) -> None:
    """The token and revocation endpoints alone (also part of the runs above): form bodies, RFC 6749 errors."""
    result = _schemathesis(live_server, api.sign_in().token, tmp_path / "junit.xml", "--include-path-regex", "^/oauth/")
    report = ROOT / "test-output" / "schemathesis-oauth.txt"
    report.parent.mkdir(exist_ok=True)
    report.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"Schemathesis found problems (full report: {report}):\n" + result.stdout[-6000:]
    assert "/oauth/token" in result.stdout and "/oauth/revoke" in result.stdout


def test_every_secured_operation_refuses_a_request_without_credentials(live_server: str) -> None:
    document = json.loads(DOCUMENT.read_text())
    secured = [
        (method, path)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if operation.get("security")
    ]
    assert len(secured) >= 15
    for method, path in secured:
        url = live_server + path.replace("{id}", "00000000-0000-4000-8000-000000000000")
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
            response = requests.request(method, url, headers=headers, json={}, timeout=10)
            assert response.status_code == 401, (method, path, headers, response.text)
            assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.browser
def test_swagger_ui_lists_every_operation(live_server: str, browser: Any) -> None:
    browser_page = browser.new_page()
    browser_page.goto(f"{live_server}/api/docs")
    browser_page.wait_for_selector(".opblock", timeout=15_000)
    summaries = browser_page.locator(".opblock-summary-path").all_inner_texts()
    document = json.loads(DOCUMENT.read_text())
    assert len(summaries) == sum(len(item) for item in document["paths"].values())
    assert "/api/transactions" in {s.replace("\u200b", "").strip() for s in summaries}
    assert browser_page.title() == "Echo Control API"
