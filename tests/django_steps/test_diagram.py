"""Mermaid diagrams of workflows."""

from __future__ import annotations

import pytest

from django_steps.definitions import import_workflow
from django_steps.diagram import mermaid_text, workflow_to_mermaid
from tests.conftest import statuses

pytestmark = pytest.mark.django_db


def classes(initial: str, final: str) -> str:
    """The lines a diagram ends with: the two styles, then the initial and the final node's."""
    return (
        "    classDef initial fill:#e3f2fd,stroke:#1565c0,stroke-width:2px\n"
        "    classDef final fill:#e8f5e9,stroke:#2e7d32,stroke-width:2px\n"
        f"    class {initial} initial\n"
        f"    class {final} final\n"
    )


CLAIM_PROCESSING_MERMAID = """\
%% Workflow: Claim Processing
flowchart TD
    s1(["Submit Claim"])
    s2["Review Claim"]
    s3((("Approve/Reject")))
    s1 -->|"always (priority 0)"| s2
    s2 -->|"always (priority 0)"| s3
""" + classes("s1", "s3")


def test_claim_processing_diagram(claim_workflow):
    assert workflow_to_mermaid(claim_workflow) == CLAIM_PROCESSING_MERMAID


TRICKY = {
    "name": 'Tricky "quotes" & <tags>\nsecond line',
    "steps": [
        {"name": 'Start "here"', "is_initial_step": True, "statuses": statuses("Open", "Done")},
        {"name": "Check A/B (fast) | #1", "statuses": statuses("Open", "Done")},
        {"name": "Big & <slow>", "statuses": statuses("Open", "Done")},
        {"name": "End; `done`", "is_final_step": True, "statuses": statuses("Open", "Done")},
    ],
    "transitions": [
        {"from_step": 'Start "here"', "to_step": "Check A/B (fast) | #1"},
        {
            "from_step": 'Start "here"',
            "to_step": "Big & <slow>",
            "priority": 10,
            "condition": 'claim.amount > 1000 && claim.claimant != "Bob"',
        },
        {
            "from_step": "Check A/B (fast) | #1",
            "to_step": "End; `done`",
            "condition": "claim.priority >= 2 || true",
        },
        {"from_step": "Big & <slow>", "to_step": "End; `done`", "priority": -1},
        {"from_step": "Big & <slow>", "to_step": 'Start "here"', "priority": -2},
    ],
}

TRICKY_MERMAID = """\
%% Workflow: Tricky "quotes" & <tags> second line
flowchart TD
    s1(["Start #34;here#34;"])
    s2["Check A/B (fast) #124; #35;1"]
    s3["Big #38; #60;slow#62;"]
    s4((("End; #96;done#96;")))
    s1 -->|"claim.amount #62; 1000 #38;#38; claim.claimant != #34;Bob#34; (priority 10)"| s3
    s1 -->|"always (priority 0)"| s2
    s2 -->|"claim.priority #62;= 2 #124;#124; true (priority 0)"| s4
    s3 -->|"always (priority -1)"| s4
    s3 -->|"always (priority -2)"| s1
""" + classes("s1", "s4")


def test_special_characters_are_escaped_and_node_ids_are_safe():
    workflow = import_workflow(TRICKY)
    text = workflow_to_mermaid(workflow)
    assert text == TRICKY_MERMAID
    # No raw double quote inside a label, and every node id is s<digits>.
    for line in text.splitlines()[2:]:
        if '"' in line:
            assert line.count('"') == 2, line


def test_the_diagram_is_deterministic_and_follows_step_order(claim_workflow):
    first = workflow_to_mermaid(claim_workflow)
    step = claim_workflow.steps.get(name="Submit Claim")
    step.order = 99  # now last: it becomes s3, still initial
    step.save()
    text = workflow_to_mermaid(claim_workflow)
    assert text != first
    assert '    s3(["Submit Claim"])' in text
    assert "    class s3 initial" in text
    assert workflow_to_mermaid(claim_workflow) == text


def test_a_step_both_initial_and_final_is_a_double_circle():
    workflow = import_workflow(
        {
            "name": "One step",
            "steps": [
                {
                    "name": "Only",
                    "is_initial_step": True,
                    "is_final_step": True,
                    "statuses": statuses("Open", "Done"),
                }
            ],
        }
    )
    text = workflow_to_mermaid(workflow)
    assert '    s1((("Only")))' in text
    assert "    class s1 initial" in text and "    class s1 final" in text


def test_mermaid_text_keeps_one_line_and_encodes_the_hash_first():
    assert mermaid_text('a\n"b"\t#34;') == "a #34;b#34; #35;34;"
