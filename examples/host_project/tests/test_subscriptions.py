"""A subscription over a real WebSocket: daphne serving the project's ASGI application."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import pytest
from websockets.sync.client import connect

from .live import Session, daphne
from .test_graphql import LOGIN, SET_STATUS

SUBSCRIBE = """subscription Follow($workflow: String!) {
  workflowInstanceEvents(workflowName: $workflow) {
    kind state instance { id } toStep { name } toStatus { name }
  }
}"""
HOLD = "mutation($id: ID!) { holdWorkflowInstance(input: {instanceId: $id}) { __typename } }"
RESUME = "mutation($id: ID!) { resumeWorkflowInstance(input: {instanceId: $id}) { __typename } }"
INSTANCE_IDS = "{ invoices { number workflow { id } } }"


@pytest.mark.django_db(transaction=True)
def test_a_subscription_sees_a_status_set_over_http(clerk, workflow, invoice):
    from django_steps.services import start_workflow_instance
    from invoices.models import Invoice

    probe = Invoice.objects.create(number="PROBE", customer="Nobody", amount=Decimal("1.00"))
    start_workflow_instance("Invoice Approval", invoice)
    start_workflow_instance("Invoice Approval", probe)
    with daphne() as base:
        session = Session(base)
        assert (
            session.graphql(LOGIN, username="clerk", password="pw")["login"]["username"] == "clerk"
        )
        ids = {
            row["number"]: row["workflow"]["id"]
            for row in session.graphql(INSTANCE_IDS)["invoices"]
        }

        ws_url = base.replace("http://", "ws://") + "/graphql/"
        headers = {"Cookie": session.cookie_header(), "Origin": base}
        with connect(
            ws_url, subprotocols=["graphql-transport-ws"], additional_headers=headers
        ) as socket:
            socket.send(json.dumps({"type": "connection_init", "payload": {}}))
            assert json.loads(socket.recv(timeout=10))["type"] == "connection_ack"
            socket.send(
                json.dumps(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {
                            "query": SUBSCRIBE,
                            "variables": {"workflow": "Invoice Approval"},
                        },
                    }
                )
            )

            def events(timeout: float):
                while True:
                    message = json.loads(socket.recv(timeout=timeout))
                    assert message["type"] == "next" and message["id"] == "1", message
                    yield message["payload"]["data"]["workflowInstanceEvents"]

            # Changes committed before the subscription is in place are not sent (no `after`
            # cursor here): toggle the probe invoice until one of its events arrives.
            deadline = time.monotonic() + 30
            for attempt in range(1000):
                session.graphql(RESUME if attempt % 2 else HOLD, id=ids["PROBE"])
                try:
                    next(events(timeout=1))
                    break
                except TimeoutError:
                    assert time.monotonic() < deadline, "the subscription never delivered"

            moved = session.graphql(SET_STATUS, id=ids["INV-1"], status="Submitted")[
                "setWorkflowInstanceStatus"
            ]
            assert moved["currentStep"] == {"name": "Approval"}
            event = next(e for e in events(timeout=10) if e["instance"]["id"] == ids["INV-1"])
            assert event == {
                "kind": "ADVANCED",
                "state": "ACTIVE",
                "instance": {"id": ids["INV-1"]},
                "toStep": {"name": "Approval"},
                "toStatus": {"name": "Waiting"},
            }
