"""Compiled, per-process cached views of published workflow versions.

The services read steps, statuses and transitions from here instead of querying them on
every change.

Caching by construction
=======================

A published version (:class:`~django_steps.models.WorkflowVersion`) is immutable and its
``document`` holds every step, status and transition with its row id, so a version compiles
from its own row alone and the compiled result never goes stale. The cache is keyed by the
version's ``(pk, content_hash)``:

* a version published inside a transaction that then rolls back may be cached, but its key
  is only ever looked up again for the very same content: a later version that gets the same
  id (SQLite hands rolled-back ids out again) has another hash unless its content — row ids
  included — is identical, and then so is its compiled form;
* an instance runs on the version it is pinned to (``WorkflowInstance.definition_version``):
  publishing a new version never changes what a running instance reads.

Edits of the rows (the admin, the ORM) are a draft until
:func:`django_steps.versions.publish_workflow` publishes them; nothing here reads the draft
except :func:`load` for a workflow never published.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.contrib.contenttypes.models import ContentType

from .models import Workflow, WorkflowInstance, WorkflowVersion
from .shape import STATUS, STEP, TRANSITION
from .snapshots import snapshot_workflow

# The snapshot's classes hold the id and every column of their part of the definition's shape
# (django_steps.shape), built from the version's document by name;
# tests/django_steps/test_shape.py checks they keep up.


@dataclass(frozen=True)
class StatusDef:
    id: int
    name: str
    description: str
    is_default_status: bool
    is_completion_status: bool
    is_cancellation_status: bool
    is_on_hold_status: bool
    permission: str


@dataclass(frozen=True)
class TransitionDef:
    id: int
    from_step_id: int
    to_step_id: int
    condition: str
    priority: int
    description: str


@dataclass
class StepDef:
    id: int
    name: str
    description: str
    order: int
    is_initial_step: bool
    is_final_step: bool
    deadline: dict[str, Any] | None = None  # see django_steps.deadlines
    assignees: dict[str, Any] | None = None  # see django_steps.workitems
    statuses: dict[str, StatusDef] = field(default_factory=dict)
    transitions: list[TransitionDef] = field(default_factory=list)  # highest priority first

    @property
    def default_status(self) -> StatusDef | None:
        return next((s for s in self.statuses.values() if s.is_default_status), None)

    @property
    def on_hold_status(self) -> StatusDef | None:
        return next((s for s in self.statuses.values() if s.is_on_hold_status), None)

    @property
    def cancellation_status(self) -> StatusDef | None:
        return next((s for s in self.statuses.values() if s.is_cancellation_status), None)


@dataclass
class CompiledWorkflow:
    id: int
    name: str
    definition_version: int  # the version's number (0: an unpublished draft)
    steps: dict[int, StepDef]
    statuses: dict[int, StatusDef]
    content_type_ids: frozenset[int] = frozenset()
    version_id: int | None = None  # the WorkflowVersion's pk (None: an unpublished draft)
    content_hash: str = ""

    @property
    def initial_step(self) -> StepDef | None:
        return next((s for s in self.steps.values() if s.is_initial_step), None)

    def step_name(self, step_id: int) -> str:
        step = self.steps.get(step_id)
        return step.name if step else f"#{step_id}"

    def step_named(self, name: str) -> StepDef | None:
        return next((s for s in self.steps.values() if s.name == name), None)


T = TypeVar("T")

_lock = threading.Lock()
_caches: dict[str, OrderedDict[tuple, Any]] = {}
_MAX = 512
stats = {"loads": 0}


def _remember(kind: str, key: tuple, value: Any, keep: int = _MAX) -> None:
    with _lock:
        cache = _caches.setdefault(kind, OrderedDict())
        cache[key] = value
        while len(cache) > keep:
            cache.popitem(last=False)


def _content_type_ids(labels: list[str]) -> frozenset[int]:
    ids = set()
    for label in labels:
        app_label, _, model = label.partition(".")
        try:
            ids.add(ContentType.objects.get_by_natural_key(app_label, model).pk)
        except ContentType.DoesNotExist:  # an app uninstalled since: nothing can start on it
            continue
    return frozenset(ids)


def compile_document(
    workflow_id: int,
    document: dict[str, Any],
    *,
    number: int = 0,
    version_id: int | None = None,
    content_hash: str = "",
) -> CompiledWorkflow:
    """The compiled form of a version's document (every part carrying its row ``id``)."""
    stats["loads"] += 1
    steps: dict[int, StepDef] = {}
    statuses: dict[int, StatusDef] = {}
    by_name: dict[str, StepDef] = {}
    for spec in document["steps"]:
        step = StepDef(id=spec["id"], **STEP.read(spec))
        for st in spec["statuses"]:
            status = StatusDef(id=st["id"], **STATUS.read(st))
            statuses[status.id] = status
            step.statuses[status.name] = status
        steps[step.id] = step
        by_name[step.name] = step
    for spec in sorted(document["transitions"], key=lambda t: (-t["priority"], t["id"])):
        source, target = by_name.get(spec["from_step"]), by_name.get(spec["to_step"])
        if source is None or target is None:  # pragma: no cover - published versions are valid
            continue
        source.transitions.append(
            TransitionDef(
                id=spec["id"],
                from_step_id=source.id,
                to_step_id=target.id,
                **TRANSITION.read(spec),
            )
        )
    return CompiledWorkflow(
        workflow_id,
        document["name"],
        number,
        steps,
        statuses,
        _content_type_ids(document.get("content_types", [])),
        version_id,
        content_hash,
    )


def for_version(version: WorkflowVersion) -> CompiledWorkflow:
    """The compiled form of ``version`` (its ``document`` may be deferred: it is read only on a
    cache miss)."""
    key = (version.pk, version.content_hash)
    value = _caches.get("versions", {}).get(key)
    if value is None:
        value = compile_document(
            version.workflow_id,
            version.document,
            number=version.number,
            version_id=version.pk,
            content_hash=version.content_hash,
        )
        _remember("versions", key, value)
    return value


def for_instance(instance: WorkflowInstance) -> CompiledWorkflow:
    """The compiled version ``instance`` runs on (select ``definition_version`` with the
    instance, its ``document`` deferred, to make a hit cost no query)."""
    return for_version(instance.definition_version)


def load(workflow: Workflow) -> CompiledWorkflow:
    """The compiled latest published version of ``workflow`` (as of ``workflow``'s
    ``definition_version``), or — never published — its current draft, uncached."""
    if not workflow.definition_version:
        return compile_document(workflow.pk, snapshot_workflow(workflow))
    key = (workflow.pk, workflow.definition_version, workflow.definition_hash)
    value = _caches.get("latest", {}).get(key)
    if value is None:
        version = (
            WorkflowVersion.objects.filter(workflow_id=workflow.pk)
            .order_by("-number")
            .defer("document")
            .first()
        )
        value = for_version(version)
        if version.number == workflow.definition_version:
            _remember("latest", key, value)
    return value


def cached(kind: str, workflow: Workflow, build: Callable[[int], T], *, keep: int = _MAX) -> T:
    """``build(workflow.pk)``, cached per process under the workflow's latest published version
    (``definition_version`` and ``definition_hash``, which move together only on publish).

    For values derived from the definition's rows (e.g. rows by id, for history readers): rows
    are never deleted while a version or an event refers to them, so what a build read for a
    version stays true for it."""
    key = (workflow.pk, workflow.definition_version, workflow.definition_hash)
    value = _caches.get(kind, {}).get(key)
    if value is None:
        value = build(workflow.pk)
        _remember(kind, key, value, keep)
    return value
