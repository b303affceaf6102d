"""Schemathesis fuzzes every query and mutation of the committed ``schema.graphql`` against a live
server, logged in as a superuser (so mutations reach the engine), with a fixed seed. The run must
find no server error: no HTTP 5xx and no GraphQL error that is not the client's fault.

``FUZZ_EXAMPLES`` sets the examples per operation (default 200); ``make fuzz`` runs 1000.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from django_steps.services import start_workflow_instance, update_workflow_step_status
from tests.conftest import CLAIM_PROCESSING, make_workflow

from .conftest import make_user

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
SEED = int(os.environ.get("FUZZ_SEED", "20261126"))

#: ``logout`` would end the fuzzer's own session (it is tested in test_mutations.py).
EXCLUDED = ["Mutation.logout"]


def _login(base: str) -> dict[str, str]:
    session = requests.Session()
    session.get(f"{base}/graphql/", headers={"Accept": "application/json"}, timeout=30)
    response = session.post(
        f"{base}/graphql/",
        json={"query": 'mutation { login(username: "fuzzer", password: "pw") { __typename } }'},
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{base}/graphql/"},
        timeout=30,
    )
    assert response.json()["data"]["login"]["__typename"] == "User", response.text
    cookies = session.cookies.get_dict()
    return {
        "Cookie": f"sessionid={cookies['sessionid']}; csrftoken={cookies['csrftoken']}",
        "X-CSRFToken": cookies["csrftoken"],
    }


@pytest.fixture
def fast_live_server(live_server, monkeypatch):
    """The live server, without the 40 ms that Nagle + delayed ACK add to each small request of
    Django's development server (the requests client sends headers and body separately)."""
    from django.core.servers import basehttp

    handle = basehttp.WSGIRequestHandler.handle

    def handle_without_delays(self):
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hasattr(socket, "TCP_QUICKACK"):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        handle(self)

    monkeypatch.setattr(basehttp.WSGIRequestHandler, "handle", handle_without_delays)
    return live_server.url.replace("localhost", "127.0.0.1")


@pytest.fixture
def fuzz_target(fast_live_server, transactional_db):
    from claims.models import Claim

    make_user("fuzzer", superuser=True)
    make_workflow("Claim Processing", CLAIM_PROCESSING)
    for i in range(3):
        claim = Claim.objects.create(title=f"c{i}", claimant="Ada", amount=100 * i)
        instance = start_workflow_instance("Claim Processing", claim)
        update_workflow_step_status(instance, "Submitted")
    return fast_live_server


def run_schemathesis(base: str, headers: dict[str, str], examples: int, report: Path) -> subprocess.CompletedProcess:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(ROOT / "schema.graphql"),
        "--url",
        f"{base}/graphql/",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--mode",
        "all",
        "--max-examples",
        str(examples),
        "--seed",
        str(SEED),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--no-color",
    ]
    for name in EXCLUDED:
        command += ["--exclude-name", name]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=3000)


def test_schemathesis_finds_no_server_error(fuzz_target, tmp_path):
    headers = _login(fuzz_target)
    report = tmp_path / "events.ndjson"
    result = run_schemathesis(fuzz_target, headers, EXAMPLES, report)
    summary = result.stdout[-6000:]
    print(summary)
    assert result.returncode == 0, summary + result.stderr[-3000:]
    assert "No issues found" in result.stdout or " 0 failures" in result.stdout or "failures" not in result.stdout.lower()
    assert report.exists() and report.stat().st_size > 0
    cases = examples_per_operation(report)
    print("examples per operation:", json.dumps(cases, sort_keys=True))
    assert len(cases) == 17  # every query and mutation except logout
    # Hypothesis stops early only when an operation's input space is exhausted (`me`, `node`...)
    many = [label for label, count in cases.items() if count >= EXAMPLES]
    assert len(many) >= 10, cases


def examples_per_operation(report: Path) -> dict[str, int]:
    """Test cases sent per operation, from schemathesis' NDJSON event stream."""
    counts: dict[str, int] = {}
    for line in report.read_text().splitlines():
        event = json.loads(line) if line.strip() else {}
        finished = event.get("ScenarioFinished")
        if finished:
            label = finished["recorder"]["label"]
            counts[label] = counts.get(label, 0) + len(finished["recorder"]["cases"])
    return counts
