"""Schemathesis fuzzes every query and mutation of the committed ``schema.graphql`` against a live
server, logged in as a superuser (so mutations reach the engine), with a fixed seed. The run must
find no server error: no HTTP 5xx and no GraphQL error that is not the client's fault.

``ID`` and ``String`` arguments are drawn half the time from values that exist on the server
(``fuzz_hooks.py``), so mutations act on real instances: the test checks that they did.

``FUZZ_EXAMPLES`` sets the examples per operation (default 100, for CI); ``make fuzz`` runs 1000
and prints each operation as it finishes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from django_steps.services import start_workflow_instance, update_workflow_step_status
from tests.conftest import CLAIM_PROCESSING, make_workflow
from tests.graphql_api.conftest import make_user

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
#: Seconds per generated case at worst, for the timeouts: hypothesis takes longer per case as it
#: explores (more examples, a loaded machine), so this is set well above a quiet run's.
SECONDS_PER_CASE = 0.3
SEED = int(os.environ.get("FUZZ_SEED", "20261126"))

#: ``logout`` would end the fuzzer's own session (it is tested in test_mutations.py).
EXCLUDED = ["Mutation.logout"]


def _operations() -> int:
    """Every query and mutation of the committed schema, except the excluded ones."""
    from graphql import build_schema

    schema = build_schema((ROOT / "schema.graphql").read_text())
    names = [
        f"{root.name}.{field}"
        for root in (schema.query_type, schema.mutation_type)
        for field in root.fields
    ]
    return len([name for name in names if name not in EXCLUDED])


OPERATIONS = _operations()
TIMEOUT = 300 + EXAMPLES * OPERATIONS * SECONDS_PER_CASE


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
    from strawberry.relay import to_base64

    from claims.models import Claim
    from django_steps.models import (
        Workflow,
        WorkflowInstance,
        WorkflowStep,
        WorkflowStepStatus,
        WorkflowTransition,
    )

    make_user("fuzzer", superuser=True)
    make_workflow("Claim Processing", CLAIM_PROCESSING)
    for i in range(12):
        claim = Claim.objects.create(title=f"c{i}", claimant="Ada", amount=100 * i)
        instance = start_workflow_instance("Claim Processing", claim)
        if i % 2:
            update_workflow_step_status(instance, "Submitted")
    for i in range(12, 15):
        Claim.objects.create(title=f"c{i}", claimant="Ada", amount=100 * i)  # nothing started yet
    # mostly instances: every instance mutation takes one
    ids = [
        to_base64("WorkflowInstance", pk)
        for pk in WorkflowInstance.objects.values_list("pk", flat=True)
    ] + [
        to_base64(model.__name__, model.objects.values_list("pk", flat=True).first())
        for model in (Workflow, WorkflowStep, WorkflowStepStatus, WorkflowTransition)
    ]
    strings = sorted(
        {"Claim Processing", "claims.claim", "fuzzer", "pw"}
        | set(WorkflowStepStatus.objects.values_list("name", flat=True))
        | set(WorkflowStep.objects.values_list("name", flat=True))
        | {str(pk) for pk in Claim.objects.values_list("pk", flat=True)}
    )
    return fast_live_server, {"ids": ids, "strings": strings}


def run_schemathesis(
    base: str, headers: dict[str, str], examples: int, report: Path, values: dict
) -> tuple[int, str]:
    """Run schemathesis, printing each operation as it finishes (from the NDJSON report)."""
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
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(Path(__file__).parent.parent / "fuzz_hooks.py"),
        "FUZZ_VALUES": json.dumps(values),
    }
    output = report.with_suffix(".out")
    started = time.monotonic()
    with open(output, "w") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, text=True
        )
        seen = 0
        try:
            while process.poll() is None:
                time.sleep(1)
                seen = _print_progress(report, seen, started)
                if time.monotonic() - started > TIMEOUT:
                    raise TimeoutError(f"schemathesis ran longer than {TIMEOUT:.0f} s")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        _print_progress(report, seen, started)
    return process.returncode, output.read_text()


def _print_progress(report: Path, seen: int, started: float) -> int:
    """Print the operations finished since the last call; the number finished so far."""
    finished = examples_per_operation(report) if report.exists() else {}
    if len(finished) > seen:
        for label, count in list(finished.items())[seen:]:
            print(
                f"fuzz: [{len(finished):>2}/{OPERATIONS}] {label}: {count} cases, "
                f"{time.monotonic() - started:.0f} s",
                flush=True,
            )
    return len(finished)


@pytest.mark.timeout(TIMEOUT + 120)
def test_schemathesis_finds_no_server_error(fuzz_target, tmp_path):
    from django_steps.models import WorkflowEvent

    base, values = fuzz_target
    headers = _login(base)
    report = tmp_path / "events.ndjson"
    returncode, output = run_schemathesis(base, headers, EXAMPLES, report, values)
    summary = output[-6000:]
    print(summary)
    assert returncode == 0, summary
    assert report.exists() and report.stat().st_size > 0
    cases = examples_per_operation(report)
    print("examples per operation:", json.dumps(cases, sort_keys=True))
    assert len(cases) == OPERATIONS
    # Hypothesis stops early only when an operation's input space is exhausted (`me`, `node`...)
    many = [label for label, count in cases.items() if count >= EXAMPLES]
    assert len(many) >= 10, cases
    # the fuzzer's mutations reached the engine: they changed real instances, as the fuzzer
    written = WorkflowEvent.objects.filter(actor__username="fuzzer")
    print(
        "history written by the fuzzer's mutations:",
        sorted(set(written.values_list("kind", flat=True))),
    )
    assert written.exists()


def examples_per_operation(report: Path) -> dict[str, int]:
    """Test cases sent per operation, from schemathesis' NDJSON event stream (in the order the
    operations finished)."""
    counts: dict[str, int] = {}
    for line in report.read_text().splitlines():
        try:
            event = json.loads(line) if line.strip() else {}
        except ValueError:
            continue  # a line still being written
        finished = event.get("ScenarioFinished")
        if finished and finished["recorder"]["label"].startswith(("Query.", "Mutation.")):
            label = finished["recorder"]["label"]
            counts[label] = counts.get(label, 0) + len(
                finished["recorder"].get("cases", {})
            )  # none when skipped
    return counts
