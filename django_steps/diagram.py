"""A workflow as a Mermaid flowchart.

Steps are nodes, in step order, with ids ``s1``, ``s2``… (never raw names or database ids, so
the text is safe and stable). The initial step is a stadium ``([…])``, a final step a double
circle ``(((…)))`` (a step both initial and final is a double circle), other steps rectangles;
the classes ``initial`` and ``final`` are applied as well. Each transition is an edge labelled
with its condition ("always" when empty) and its priority, in the order the engine tries them.

Labels are always quoted, and characters Mermaid would otherwise interpret (quotes, ``#``,
``<``, ``>``, ``&``, ``|``, backticks) are written as Mermaid entity codes
(``#34;``…), which Mermaid renders back as the original characters.
"""

from __future__ import annotations

from types import SimpleNamespace

from .models import Workflow, WorkflowVersion
from .snapshots import snapshot_workflow

__all__ = ["workflow_to_mermaid", "version_to_mermaid", "document_to_mermaid", "mermaid_text"]

_ENTITIES = {
    "#": "#35;",  # first, so the other replacements are not themselves re-escaped
    '"': "#34;",
    "&": "#38;",
    "<": "#60;",
    ">": "#62;",
    "|": "#124;",
    "`": "#96;",
}


def mermaid_text(text: str) -> str:
    """``text`` made safe for a quoted Mermaid label (one line, special characters as entity
    codes)."""
    text = " ".join(str(text).split())
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def _comment(text: str) -> str:
    return " ".join(str(text).split())


def workflow_to_mermaid(workflow: Workflow) -> str:
    """The Mermaid ``flowchart TD`` source of ``workflow``'s current definition (deterministic;
    ends with a newline)."""
    return document_to_mermaid(snapshot_workflow(workflow))


def version_to_mermaid(version: WorkflowVersion) -> str:
    """The Mermaid source of one published version (as :func:`workflow_to_mermaid` drew it)."""
    return document_to_mermaid(version.document)


def document_to_mermaid(document: dict) -> str:
    """The Mermaid source of a version's document (steps and transitions with their ``id``)."""
    steps = [SimpleNamespace(**step) for step in document["steps"]]
    ids = {step.name: step.id for step in steps}
    node = {step.id: f"s{i}" for i, step in enumerate(steps, start=1)}
    position = {step.id: i for i, step in enumerate(steps)}
    transitions = sorted(
        (
            SimpleNamespace(**t, from_step_id=ids[t["from_step"]], to_step_id=ids[t["to_step"]])
            for t in document["transitions"]
            if t["from_step"] in ids and t["to_step"] in ids
        ),
        key=lambda t: (position.get(t.from_step_id, len(steps)), -t.priority, t.id),
    )
    workflow = SimpleNamespace(name=document["name"])

    lines = [f"%% Workflow: {_comment(workflow.name)}", "flowchart TD"]
    initial, final = [], []
    for step in steps:
        label = mermaid_text(step.name)
        if step.is_final_step:
            shape = f'((("{label}")))'
        elif step.is_initial_step:
            shape = f'(["{label}"])'
        else:
            shape = f'["{label}"]'
        lines.append(f"    {node[step.id]}{shape}")
        if step.is_initial_step:
            initial.append(node[step.id])
        if step.is_final_step:
            final.append(node[step.id])
    for t in transitions:
        if (
            t.from_step_id not in node or t.to_step_id not in node
        ):  # pragma: no cover - same workflow
            continue
        condition = t.condition.strip() if t.condition else ""
        label = f"{condition or 'always'} (priority {t.priority})"
        lines.append(
            f'    {node[t.from_step_id]} -->|"{mermaid_text(label)}"| {node[t.to_step_id]}'
        )
    lines.append("    classDef initial fill:#e3f2fd,stroke:#1565c0,stroke-width:2px")
    lines.append("    classDef final fill:#e8f5e9,stroke:#2e7d32,stroke-width:2px")
    if initial:
        lines.append(f"    class {','.join(initial)} initial")
    if final:
        lines.append(f"    class {','.join(final)} final")
    return "\n".join(lines) + "\n"
