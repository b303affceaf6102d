"""Definition documents as data: normalising them to every key and validating them (reading
and writing their text is :mod:`django_steps.document_text`).

:mod:`django_steps.definitions` is the public entry: it re-exports the names here and describes
the document format and the validation rules; storing workflows is done there.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from typing import Any

from django.contrib.contenttypes.models import ContentType

from . import context, deadlines, workitems
from .cel import available, compile_condition, is_unconditional, variables
from .conf import steps_setting
from .document_text import _kind, dump_document, load_document
from .exceptions import ConditionSyntaxError, InvalidDefinition
from .shape import ROLE_FLAGS, STATUS, STEP, TRANSITION, WORKFLOW, Part

__all__ = [
    "validate_definition",
    "load_document",
    "dump_document",
    "normalize_document",
]


MAX_NAME = 255

_PERMISSION_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z0-9_.-]+$")
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


class _Problems:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, path: str, message: str, *, limit: str | None = None) -> None:
        """One problem; ``limit`` names the size setting it is over (the admin refuses those
        even in a draft, see :mod:`django_steps.admin`)."""
        problem = {"path": path, "message": message}
        if limit is not None:
            problem["limit"] = limit
        self.items.append(problem)


def _is_type(value: Any, expected: type) -> bool:
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _check_mapping(value: Any, path: str, part: Part, problems: _Problems) -> dict[str, Any] | None:
    """Type-check one mapping against its part of the shape; return it with defaults-to-be
    (None) dropped, or None if unusable."""
    if not isinstance(value, dict):
        problems.add(path, f"must be a mapping, not {_kind(value)}")
        return None
    clean: dict[str, Any] = {}
    for name, item in value.items():
        key_path = f"{path}.{name}" if path else str(name)
        if name not in part.names:
            problems.add(
                key_path, f"unknown key {name!r}; expected one of: {', '.join(part.names)}"
            )
            continue
        if item is None:
            continue
        key = part[name]
        if not _is_type(item, key.type):
            problems.add(key_path, f"must be {_TYPE_NAMES[key.type]}, not {_kind(item)}")
            continue
        if key.range is not None:
            low, high = key.range
            if low >= 0 and item < 0:
                problems.add(key_path, "must not be negative")
                continue
            if not low <= item <= high:
                problems.add(key_path, f"must be an integer from {low} to {high}")
                continue
        clean[name] = item
    for name in part.required:
        if value.get(name) is None:
            problems.add(f"{path}.{name}" if path else name, "is required")
    if "name" in clean:
        name = clean["name"]
        name_path = f"{path}.name" if path else "name"
        if not name.strip():
            problems.add(name_path, "must not be blank")
        elif len(name) > MAX_NAME:
            problems.add(name_path, f"is longer than {MAX_NAME} characters")
    return clean


def normalize_document(document: Any) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """Type-check ``document`` and fill in defaults. Returns the normalized document (parts
    with type problems are left out) and the list of type/shape problems."""
    problems = _Problems()
    top = _check_mapping(document, "", WORKFLOW, problems)
    normalized: dict[str, Any] = {
        **WORKFLOW.fill(top or {}),
        "content_types": [],
        "steps": [],
        "transitions": [],
    }
    if top is None:
        return normalized, problems.items
    for i, label in enumerate(top.get("content_types", [])):
        if not isinstance(label, str):
            problems.add(f"content_types[{i}]", f'must be "app_label.model", not {_kind(label)}')
        elif label.lower() not in normalized["content_types"]:
            normalized["content_types"].append(label.lower())
    for i, raw_step in enumerate(top.get("steps", [])):
        path = f"steps[{i}]"
        step = _check_mapping(raw_step, path, STEP, problems)
        if step is None:
            continue
        statuses = []
        for j, raw_status in enumerate(step.get("statuses", [])):
            status_path = f"{path}.statuses[{j}]"
            status = _check_mapping(raw_status, status_path, STATUS, problems)
            if status is not None:
                statuses.append({**STATUS.fill(status), "_path": status_path})
        normalized["steps"].append(
            {**STEP.fill(step, order=i + 1), "statuses": statuses, "_path": path}
        )
    for i, raw in enumerate(top.get("transitions", [])):
        path = f"transitions[{i}]"
        t = _check_mapping(raw, path, TRANSITION, problems)
        if t is not None:
            normalized["transitions"].append({**TRANSITION.fill(t), "_path": path})
    return normalized, problems.items


def _strip_paths(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": doc["name"],
        "description": doc["description"],
        "content_types": list(doc["content_types"]),
        "steps": [
            {
                **{k: v for k, v in step.items() if k not in ("_path", "statuses")},
                "statuses": [
                    {k: v for k, v in s.items() if k != "_path"} for s in step["statuses"]
                ],
            }
            for step in doc["steps"]
        ],
        "transitions": [{k: v for k, v in t.items() if k != "_path"} for t in doc["transitions"]],
    }


def _check(document: Any) -> tuple[dict[str, Any], list[dict[str, str]], list[str]]:
    """Normalize and validate; returns (normalized document with paths, problems, warnings)."""
    doc, type_problems = normalize_document(document)
    problems = _Problems()
    problems.items.extend(type_problems)
    warnings: list[str] = []
    if not isinstance(document, dict):
        return doc, problems.items, warnings
    steps = doc["steps"]
    if not steps and "steps" not in {p["path"] for p in type_problems}:
        problems.add("steps", "a workflow needs at least one step")
    _check_size(doc, problems)
    _check_content_types(doc["content_types"], problems, warnings)
    by_name = _check_steps(steps, problems, warnings)
    _check_step_expressions(steps, doc["content_types"], problems)
    roots = _root_variables(doc["content_types"])
    outgoing = _check_transitions(doc["transitions"], by_name, problems, roots)
    _warn_dead_ends(by_name, outgoing, warnings)
    _check_reachable(steps, by_name, outgoing, problems)
    return doc, problems.items, warnings


def _check_content_types(labels: list[str], problems: _Problems, warnings: list[str]) -> None:
    for i, label in enumerate(labels):
        if _content_type(label) is None:
            problems.add(
                f"content_types[{i}]",
                f'"{label[:100]}" names no installed model (expected "app_label.model")',
            )
    if not labels:
        warnings.append(
            "No content_types: the workflow cannot be started on any model until some are listed."
        )


def _check_steps(
    steps: list[dict[str, Any]], problems: _Problems, warnings: list[str]
) -> dict[str, dict[str, Any]]:
    """Step names, each step's statuses and roles, the initial and final steps; returns the
    steps by name (the first of a duplicated name)."""
    by_name: dict[str, dict[str, Any]] = {}
    for step in steps:
        path, name = step["_path"], step["name"]
        if name in by_name:
            problems.add(f"{path}.name", f'duplicate step name "{name}"')
        elif name:
            by_name[name] = step
        for sub, message in workitems.assignee_problems(step["assignees"]):
            problems.add(f"{path}.assignees{sub}", message)
        _check_statuses(step, problems, warnings)
        if step.get("deadline") is not None:
            names = [status["name"] for status in step["statuses"]]
            for key, message in deadlines.problems(step["deadline"], names):
                problems.add(f"{path}.deadline" + (f".{key}" if key else ""), message)
    initial = [s for s in steps if s["is_initial_step"]]
    if steps and len(initial) != 1:
        names = ", ".join(f'"{s["name"]}"' for s in initial)
        problems.add(
            "steps",
            f"exactly one step must be initial, not {len(initial)}"
            + (f" ({names})" if names else ""),
        )
    if steps and not any(s["is_final_step"] for s in steps):
        problems.add("steps", "at least one step must be final")
    return by_name


def _check_statuses(step: dict[str, Any], problems: _Problems, warnings: list[str]) -> None:
    """The statuses of ``step``: each with a unique name, a well-formed permission and one role at
    most; one default, at most one cancellation and one on-hold status, a completion status."""
    path, name = step["_path"], step["name"]
    seen: set[str] = set()
    for status in step["statuses"]:
        if status["name"] in seen:
            problems.add(
                f"{status['_path']}.name",
                f'duplicate status name "{status["name"]}" in step "{name}"',
            )
        seen.add(status["name"])
        if status["permission"] and not _PERMISSION_RE.match(status["permission"]):
            problems.add(
                f"{status['_path']}.permission",
                f'permission of status "{status["name"]}" must be "app_label.codename"',
            )
        roles = [flag for flag in ROLE_FLAGS if status[flag]]
        if len(roles) > 1:
            problems.add(
                status["_path"],
                f'status "{status["name"]}" of step "{name}" has more than one role: '
                f"{', '.join(roles)}",
            )
        if status["is_default_status"] and (
            status["is_cancellation_status"] or status["is_on_hold_status"]
        ):
            problems.add(
                status["_path"],
                f'the default status "{status["name"]}" of step "{name}" cannot be a '
                "cancellation or on-hold status",
            )
    defaults = [s for s in step["statuses"] if s["is_default_status"]]
    if len(defaults) != 1:
        problems.add(
            f"{path}.statuses",
            f'step "{name}" must have exactly one default status, not {len(defaults)}',
        )
    for flag, label in (
        ("is_cancellation_status", "cancellation"),
        ("is_on_hold_status", "on-hold"),
    ):
        flagged = [s for s in step["statuses"] if s[flag]]
        if len(flagged) > 1:
            problems.add(
                f"{path}.statuses",
                f'step "{name}" has {len(flagged)} {label} statuses; at most one',
            )
    has_completion = any(s["is_completion_status"] for s in step["statuses"])
    if step["is_final_step"] and not has_completion:
        problems.add(
            f"{path}.statuses",
            f'final step "{name}" needs a completion status, or instances can never complete there',
        )
    elif not step["is_final_step"] and not has_completion:
        warnings.append(
            f'Step "{name}" has no completion status: instances there can never move on.'
        )


def _root_variables(labels: list[str], *, with_input: bool = True) -> frozenset[str] | None:
    """The variables an expression may read on any of the models ``labels`` names (see
    :func:`django_steps.context.root_variables`: ``with_input`` for transition conditions, not
    for what is evaluated on entering a step); ``None`` when none is listed or one names no
    model: then nothing is known of them."""
    models = [ct.model_class() if (ct := _content_type(label)) else None for label in labels]
    if not models or any(model is None for model in models):
        return None
    return frozenset().union(
        *(context.root_variables(model, with_input=with_input) for model in models)
    )


#: A step's expressions evaluated on entering it (:func:`django_steps.context.on_entry`, no
#: ``input``): (key, sub-key) of each.
_ENTRY_EXPRESSIONS = (("assignees", "expression"), ("deadline", "at"))


def _check_step_expressions(
    steps: list[dict[str, Any]], labels: list[str], problems: _Problems
) -> None:
    """Each step's expressions (:data:`_ENTRY_EXPRESSIONS`) reading a variable none of the
    listed models gives. One that does not compile was refused already: skipped here."""
    roots = None
    for step in steps:
        for key, sub in _ENTRY_EXPRESSIONS:
            value = step.get(key)
            expression = value.get(sub) if isinstance(value, dict) else None
            if not isinstance(expression, str) or not expression.strip():
                continue
            try:
                compile_condition(expression)
            except ConditionSyntaxError:
                continue
            if roots is None:
                roots = _root_variables(labels, with_input=False) or frozenset()
                if not roots:
                    return
            unknown = _unknown_variable(expression, roots)
            if unknown is not None:
                problems.add(f"{step['_path']}.{key}.{sub}", unknown)


def _unknown_variable(condition: str, roots: frozenset[str] | None) -> str | None:
    """The message for a condition reading a variable none of the definition's models has."""
    if roots is None:
        return None
    unknown = sorted(
        name
        for name in variables(condition)
        if name not in roots and not context.resolves_alone(name)
    )
    if not unknown:
        return None
    return f"unknown variable {unknown[0][:64]!r}; {available(roots)}"


def _check_transitions(
    transitions: list[dict[str, Any]],
    by_name: dict[str, dict[str, Any]],
    problems: _Problems,
    roots: frozenset[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Their steps and conditions; returns the valid transitions by the name of their step.
    ``roots``: the variables the definition's models give conditions (when it lists them)."""
    # Compiling is bounded per condition (django_steps.cel) and here for the whole definition:
    # distinct conditions over DEFINITION_MAX_CONDITIONS_LENGTH characters in all are refused
    # without compiling any (one over CEL_MAX_LENGTH is refused unparsed anyway).
    longest = int(steps_setting("CEL_MAX_LENGTH"))
    conditions = {
        t["condition"]
        for t in transitions
        if not is_unconditional(t["condition"]) and len(t["condition"]) <= longest
    }
    total = sum(map(len, conditions))
    total_limit = int(steps_setting("DEFINITION_MAX_CONDITIONS_LENGTH"))
    compile_conditions = total <= total_limit
    if not compile_conditions:
        problems.add(
            "transitions",
            f"the conditions total {total} characters, over the limit of {total_limit}",
        )
    outgoing: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for t in transitions:
        path = t["_path"]
        label = f'"{t["from_step"]} → {t["to_step"]}"'
        known = True
        for end in ("from_step", "to_step"):
            if t[end] and t[end] not in by_name:
                problems.add(
                    f"{path}.{end}", f'transition {label} names an unknown step "{t[end]}"'
                )
                known = False
        if compile_conditions and not is_unconditional(t["condition"]):
            try:
                compile_condition(t["condition"])
            except ConditionSyntaxError as exc:
                problems.add(f"{path}.condition", f"transition {label}: {exc.message}")
            else:
                unknown = _unknown_variable(t["condition"], roots)
                if unknown is not None:
                    problems.add(f"{path}.condition", f"transition {label}: {unknown}")
        if known and t["from_step"] and t["to_step"]:
            outgoing[t["from_step"]].append(t)

    return outgoing


def _warn_dead_ends(
    by_name: dict[str, dict[str, Any]],
    outgoing: dict[str, list[dict[str, Any]]],
    warnings: list[str],
) -> None:
    """Steps instances get stuck on, transitions never taken or shadowed by an unconditional one."""
    for name, step in by_name.items():
        out = sorted(outgoing.get(name, []), key=lambda t: -t["priority"])  # stable: document order
        if step["is_final_step"]:
            if out:
                warnings.append(
                    f'Transitions out of final step "{name}" are never taken: '
                    "a completion status there completes the instance."
                )
            continue
        if not out:
            warnings.append(
                f'Step "{name}" is not final and has no outgoing transition: '
                "instances there are stuck."
            )
            continue
        for k, t in enumerate(out):
            if is_unconditional(t["condition"]):
                for shadowed in out[k + 1 :]:
                    warnings.append(
                        f'Transition "{shadowed["from_step"]} → {shadowed["to_step"]}" (priority '
                        f"{shadowed['priority']}) never fires: the unconditional "
                        f'"{t["from_step"]} → {t["to_step"]}" (priority {t["priority"]}) '
                        "is tried first."
                    )
                break


def _check_reachable(
    steps: list[dict[str, Any]],
    by_name: dict[str, dict[str, Any]],
    outgoing: dict[str, list[dict[str, Any]]],
    problems: _Problems,
) -> None:
    """Every step is reachable from the single initial step (none checked without one)."""
    initial = [s for s in steps if s["is_initial_step"]]
    if len(initial) == 1 and initial[0]["name"] in by_name:
        start = initial[0]["name"]
        reached = {start}
        queue = deque([start])
        while queue:
            for t in outgoing.get(queue.popleft(), []):
                if t["to_step"] not in reached:
                    reached.add(t["to_step"])
                    queue.append(t["to_step"])
        for name, step in by_name.items():
            if name not in reached:
                problems.add(
                    step["_path"], f'step "{name}" is unreachable from the initial step "{start}"'
                )


def _check_size(doc: dict[str, Any], problems: _Problems) -> None:
    """The ``DEFINITION_MAX_*`` limits. The messages do not repeat the counts, so a workflow
    already over a limit can be edited down in the admin without each save looking like a new
    problem."""
    max_steps = int(steps_setting("DEFINITION_MAX_STEPS"))
    max_statuses = int(steps_setting("DEFINITION_MAX_STATUSES_PER_STEP"))
    max_transitions = int(steps_setting("DEFINITION_MAX_TRANSITIONS"))
    max_outgoing = int(steps_setting("DEFINITION_MAX_TRANSITIONS_PER_STEP"))
    if len(doc["steps"]) > max_steps:
        problems.add(
            "steps", f"a workflow may have at most {max_steps} steps", limit="DEFINITION_MAX_STEPS"
        )
    if len(doc["transitions"]) > max_transitions:
        problems.add(
            "transitions",
            f"a workflow may have at most {max_transitions} transitions",
            limit="DEFINITION_MAX_TRANSITIONS",
        )
    outgoing: dict[str, int] = defaultdict(int)
    for t in doc["transitions"]:
        outgoing[t["from_step"]] += 1
    reported: set[str] = set()
    for step in doc["steps"]:
        name = step["name"]
        if len(step["statuses"]) > max_statuses:
            problems.add(
                f"{step['_path']}.statuses",
                f'step "{name}" may have at most {max_statuses} statuses',
                limit="DEFINITION_MAX_STATUSES_PER_STEP",
            )
        if outgoing.get(name, 0) > max_outgoing and name not in reported:
            reported.add(name)  # duplicate step names are reported elsewhere
            problems.add(
                step["_path"],
                f'step "{name}" may have at most {max_outgoing} outgoing transitions',
                limit="DEFINITION_MAX_TRANSITIONS_PER_STEP",
            )


def _content_type(label: str) -> ContentType | None:
    """The content type of an installed model named "app_label.model", else None."""
    app_label, _, model = label.partition(".")
    if not app_label or not model:
        return None
    try:
        content_type = ContentType.objects.get_by_natural_key(app_label, model.lower())
    except ContentType.DoesNotExist:
        return None
    return content_type if content_type.model_class() is not None else None


def validate_definition(document: dict) -> list[str]:
    """Validate a whole definition document. Returns warnings; raises
    :class:`InvalidDefinition` listing every problem (``exc.problems``)."""
    _doc, problems, warnings = _check(document)
    if problems:
        name = document.get("name") if isinstance(document, dict) else None
        label = (
            f'Workflow "{name}"' if isinstance(name, str) and name else "The workflow definition"
        )
        count = len(problems)
        raise InvalidDefinition(
            f"{label} is invalid ({count} problem{'s' if count != 1 else ''}): "
            + "; ".join(f"{p['path']}: {p['message']}" for p in problems),
            problems=problems,
        )
    return warnings
