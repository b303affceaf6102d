"""A compiled, per-process cached view of one workflow definition.

The services read steps, statuses and transitions from here instead of querying them on
every change.

Only committed definitions are ever served
==========================================

Every write to a step, status or transition (see ``signals.py``) calls
:func:`bump_definition_version`, which gives the workflow row a new random
``definition_token``. The cache is keyed by ``(workflow.pk, definition_token)``:

* a definition read inside a transaction that then rolls back is cached under a token that
  was never committed and, being random, is never handed out again — the entry is dead, not
  wrong (the next committed edit has a token of its own);
* ids a rollback gives back (SQLite reuses them) cannot alias: the new row has a new token;
* a definition committed by someone else while it is being read (PostgreSQL reads each
  statement at its own snapshot) is detected by reading the token again after the rows
  (:func:`cached`): the rows are only cached when the token did not move meanwhile.

``definition_version`` is the human-facing counter (admin, ``load_workflow``): it moves once
per committed transaction that changes the definition, however many rows it saves — the first
bump of a transaction increments it, later ones see their own token and leave it.

Bulk ``QuerySet.update()`` on definition tables bypasses the signals: call
:func:`bump_definition_version` after one.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import router, transaction
from django.db.models import Case, F, When

from .models import Workflow, WorkflowStep, WorkflowStepStatus, WorkflowTransition
from .shape import STATUS, STEP, TRANSITION

# The snapshot's classes hold the id and every column of their part of the definition's shape
# (django_steps.shape), built from the rows by name; tests/test_shape.py checks they keep up.


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
    definition_version: int
    steps: dict[int, StepDef]
    statuses: dict[int, StatusDef]
    content_type_ids: frozenset[int] = frozenset()

    @property
    def initial_step(self) -> StepDef | None:
        return next((s for s in self.steps.values() if s.is_initial_step), None)

    def step_name(self, step_id: int) -> str:
        step = self.steps.get(step_id)
        return step.name if step else f"#{step_id}"


T = TypeVar("T")

_lock = threading.Lock()
_caches: dict[str, OrderedDict[tuple[int, uuid.UUID], Any]] = {}
_MAX = 512
stats = {"loads": 0}


def cached(kind: str, workflow: Workflow, build: Callable[[int], T], *, keep: int = _MAX) -> T:
    """``build(workflow.pk)``, cached per process under ``(kind, workflow.pk, token)``.

    The token is read again after ``build`` ran: if a definition change committed meanwhile,
    the rows read may belong to it, so they are built again for the new token (and the result
    is cached only once the token held still around a whole build). ``build`` must only read
    the definition's own rows (steps, statuses, transitions).
    """
    cache = _caches.setdefault(kind, OrderedDict())
    token = workflow.definition_token
    value = cache.get((workflow.pk, token))
    if value is not None:
        return value
    for _attempt in range(3):
        value = build(workflow.pk)
        current = (
            Workflow.objects.filter(pk=workflow.pk)
            .values_list("definition_token", flat=True)
            .first()
        )
        if current is None:  # deleted meanwhile: serve what was read, remember nothing
            return value
        if current == token:
            with _lock:
                cache[(workflow.pk, token)] = value
                while len(cache) > keep:
                    cache.popitem(last=False)
            return value
        token = current
    return value  # the definition keeps changing under us: serve the latest read, uncached


def _compile(workflow: Workflow) -> Callable[[int], CompiledWorkflow]:
    def build(workflow_id: int) -> CompiledWorkflow:
        stats["loads"] += 1
        steps = {
            s.id: StepDef(id=s.id, **STEP.values_of(s))
            for s in WorkflowStep.objects.filter(workflow_id=workflow_id).order_by("order", "id")
        }
        statuses: dict[int, StatusDef] = {}
        for st in WorkflowStepStatus.objects.filter(step__workflow_id=workflow_id).order_by("id"):
            status = StatusDef(id=st.id, **STATUS.values_of(st))
            statuses[st.id] = status
            steps[st.step_id].statuses[st.name] = status
        for t in WorkflowTransition.objects.filter(workflow_id=workflow_id).order_by(
            "-priority", "id"
        ):
            if t.from_step_id in steps:
                steps[t.from_step_id].transitions.append(
                    TransitionDef(
                        id=t.id,
                        from_step_id=t.from_step_id,
                        to_step_id=t.to_step_id,
                        **TRANSITION.values_of(t, condition=t.condition or ""),
                    )
                )
        content_types = frozenset(
            Workflow.content_types.through.objects.filter(workflow_id=workflow_id).values_list(
                "contenttype_id", flat=True
            )
        )
        return CompiledWorkflow(
            workflow_id, workflow.name, workflow.definition_version, steps, statuses, content_types
        )

    return build


def load(workflow: Workflow) -> CompiledWorkflow:
    """Return the compiled definition of ``workflow`` (5 queries on a cache miss, 0 on a hit)."""
    return cached("compiled", workflow, _compile(workflow))


# --------------------------------------------------------------------------- the token


def _tokens_written(using: str) -> dict[int, uuid.UUID] | None:
    """Tokens this connection wrote in its current transaction (None outside a transaction).

    Cleared when the transaction commits. After a rollback the entries are stale but harmless:
    a rolled-back token is not the one in the database, so the next bump increments again.
    """
    connection = transaction.get_connection(using)
    if not connection.in_atomic_block:
        return None
    tokens = getattr(connection, "_django_steps_definition_tokens", None)
    if tokens is None:
        tokens = connection._django_steps_definition_tokens = {}
    return tokens


def note_definition_written(workflow_id: int, token: uuid.UUID, using: str) -> None:
    """Remember that this transaction wrote ``token`` (later bumps keep the version)."""
    tokens = _tokens_written(using)
    if tokens is not None:
        tokens[workflow_id] = token
        transaction.on_commit(tokens.clear, using=using)


def bump_definition_version(workflow_id: int, *, using: str | None = None) -> None:
    """Give the workflow a new definition token; increment ``definition_version`` unless this
    transaction already did (or created the workflow)."""
    using = using or router.db_for_write(Workflow)
    tokens = _tokens_written(using)
    last = tokens.get(workflow_id) if tokens else None
    version: Any = F("definition_version") + 1
    if last is not None:
        version = Case(When(definition_token=last, then=F("definition_version")), default=version)
    token = uuid.uuid4()
    Workflow.objects.using(using).filter(pk=workflow_id).update(
        definition_version=version, definition_token=token
    )
    note_definition_written(workflow_id, token, using)
