"""Workflow definitions, running instances and their append-only history.

Model and field names are those of the original django-steps, so code written against it runs.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.functional import cached_property

from .cel import compile_condition
from .choices import FINISHED_STATES, UNFINISHED_STATES, EventKind, InstanceState
from .exceptions import ConditionSyntaxError
from .shape import ONE_PER_STEP_FLAGS


class Workflow(models.Model):
    """A workflow definition, e.g. "Claim Processing": ordered steps joined by transitions."""

    name = models.CharField(max_length=255, unique=True, help_text="Unique name of the workflow.")
    description = models.TextField(blank=True, default="")
    # The number of the latest published version (0: never published) and its content hash;
    # both move only when a version is published (see ``versions.py``). The per-process caches
    # of ``compiled.py`` are keyed by them.
    definition_version = models.PositiveIntegerField(default=0, editable=False)
    definition_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    # The models it may be started on; none listed: it cannot be started (see authorization.py).
    content_types = models.ManyToManyField(
        ContentType,
        blank=True,
        related_name="+",
        help_text="Models whose objects this workflow may be started on.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name

    def get_initial_step(self) -> WorkflowStep | None:
        return self.steps.filter(is_initial_step=True).first()

    @property
    def latest_version(self) -> WorkflowVersion | None:
        """The latest published version (None before the first publish)."""
        return self.versions.order_by("-number").first()


class LiveManager(models.Manager):
    """The default manager of steps, statuses and transitions: the rows of the current
    definition. Retired rows (removed from the definition, kept because published versions and
    history refer to them) are left out; ``all_objects`` includes them, and foreign keys
    (``instance.current_step``, an event's ``to_step``) always reach them."""

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(retired=False)


_RETIRED_HELP = (
    "Removed from the definition; kept because published versions and history refer to it "
    "(adding the name again brings it back)."
)


class Retirable(models.Model):
    """A part of a definition (step, status, transition) that is retired rather than deleted
    when the definition drops it: see :class:`LiveManager`."""

    retired = models.BooleanField(default=False, editable=False, help_text=_RETIRED_HELP)

    objects = LiveManager()
    # Declared after `objects`: the first manager is the default one. Ruff takes
    # models.Manager() for a field, hence the noqa.
    all_objects = models.Manager()  # noqa: DJ012

    class Meta:
        abstract = True

    def retire(self, *also_saved: str) -> None:
        """Remove the row from the definition, keeping it for what refers to it (takes effect
        when published); ``also_saved``: fields a subclass changed with it, saved together."""
        self.retired = True
        self.save(update_fields=[*also_saved, "retired"])


class WorkflowVersion(models.Model):
    """One published version of a workflow definition: an immutable snapshot.

    ``document`` is the definition document (:func:`django_steps.definitions.export_workflow`)
    with the ``id`` of every step, status and transition row added, so an instance pinned to
    the version runs from it alone (:mod:`django_steps.compiled`). ``content_hash`` is the
    SHA-256 of its canonical JSON: publishing identical content makes no new version."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(help_text="1, 2, 3… per workflow.")
    document = models.JSONField()
    content_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ("workflow", "-number")
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "number"], name="django_steps_version_number_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.name} v{self.number}" if self.workflow_id else f"v{self.number}"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("A published workflow version is immutable.")
        super().save(*args, **kwargs)


class WorkflowStep(Retirable):
    """One step of a workflow. Exactly one step is initial; at least one is final."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    order = models.PositiveIntegerField(default=0)
    is_initial_step = models.BooleanField(default=False)
    is_final_step = models.BooleanField(default=False)
    assignees = models.JSONField(
        null=True,
        blank=True,
        default=None,
        help_text='Who acts on the step: {"groups": [names], "expression": "CEL giving users"}; '
        "empty: anyone who may change the instance.",
    )
    deadline = models.JSONField(
        null=True,
        blank=True,
        help_text='When the step is due: {"after": "P2D"} (or "at": a CEL timestamp), an optional '
        '"status" to set then and "remind_before": "PT4H". See django_steps.deadlines.',
    )

    class Meta:
        ordering = ("workflow", "order", "id")
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "name"], name="django_steps_step_name_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.name} / {self.name}" if self.workflow_id else self.name

    def get_default_status(self) -> WorkflowStepStatus | None:
        return self.statuses.filter(is_default_status=True).first()

    def retire(self) -> None:
        """Remove the step (with its statuses and transitions) from the definition, keeping the
        rows published versions and history refer to. Takes effect when published."""
        for status in WorkflowStepStatus.all_objects.filter(step=self):
            status.retire()
        WorkflowTransition.all_objects.filter(Q(from_step=self) | Q(to_step=self)).update(
            retired=True
        )
        super().retire()


class WorkflowStepStatus(Retirable):
    """A custom status of a step. Per step: one default, at most one cancellation and one
    on-hold."""

    step = models.ForeignKey(WorkflowStep, on_delete=models.CASCADE, related_name="statuses")
    name = models.CharField(max_length=255)
    description = models.TextField(blank=True, default="")
    is_default_status = models.BooleanField(default=False)
    is_completion_status = models.BooleanField(default=False)
    is_cancellation_status = models.BooleanField(default=False)
    is_on_hold_status = models.BooleanField(default=False)
    permission = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text='Permission needed to set this status ("app_label.codename"), checked with '
        "user.has_perm(permission, content_object); empty: anyone who may change the instance.",
    )

    class Meta:
        ordering = ("step", "id")
        verbose_name_plural = "workflow step statuses"
        constraints = [
            models.UniqueConstraint(
                fields=["step", "name"], name="django_steps_status_name_unique"
            ),
            models.UniqueConstraint(
                fields=["step"],
                condition=Q(is_default_status=True),
                name="django_steps_one_default_status",
            ),
            models.UniqueConstraint(
                fields=["step"],
                condition=Q(is_cancellation_status=True),
                name="django_steps_one_cancellation_status",
            ),
            models.UniqueConstraint(
                fields=["step"],
                condition=Q(is_on_hold_status=True),
                name="django_steps_one_on_hold_status",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.step} / {self.name}" if self.step_id else self.name

    def retire(self) -> None:
        """Remove the status from the definition, keeping the row (see :meth:`WorkflowStep.retire`);
        its one-per-step roles are cleared so a live status can take them."""
        for flag in ONE_PER_STEP_FLAGS:
            setattr(self, flag, False)
        super().retire(*ONE_PER_STEP_FLAGS)


class WorkflowTransition(Retirable):
    """A move from one step to another, tried by priority (highest first) when a completion
    status is set. An empty condition always matches; otherwise a CEL expression decides."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="transitions")
    from_step = models.ForeignKey(
        WorkflowStep, on_delete=models.CASCADE, related_name="outgoing_transitions"
    )
    to_step = models.ForeignKey(
        WorkflowStep, on_delete=models.CASCADE, related_name="incoming_transitions"
    )
    condition = models.TextField(
        blank=True, default="", help_text="CEL expression; empty = always."
    )
    priority = models.IntegerField(default=0, help_text="Higher priorities are tried first.")
    description = models.TextField(blank=True, default="")

    class Meta:
        ordering = ("workflow", "from_step__order", "-priority", "id")

    def __str__(self) -> str:
        return f"{self.from_step.name} → {self.to_step.name}"

    def _label(self) -> str:
        from_name = self.from_step.name if self.from_step_id else "?"
        to_name = self.to_step.name if self.to_step_id else "?"
        return f'"{from_name}" → "{to_name}" (priority {self.priority})'

    def clean(self) -> None:
        errors: dict[str, list[ValidationError]] = {}
        if (
            self.from_step_id
            and self.workflow_id
            and self.from_step.workflow_id != self.workflow_id
        ):
            errors.setdefault("from_step", []).append(
                ValidationError(
                    "The step belongs to another workflow.", code="STEP_OF_OTHER_WORKFLOW"
                )
            )
        if self.to_step_id and self.workflow_id and self.to_step.workflow_id != self.workflow_id:
            errors.setdefault("to_step", []).append(
                ValidationError(
                    "The step belongs to another workflow.", code="STEP_OF_OTHER_WORKFLOW"
                )
            )
        if self.condition and self.condition.strip():
            try:
                compile_condition(self.condition)
            except ConditionSyntaxError as exc:
                errors.setdefault("condition", []).append(
                    ValidationError(
                        "Transition %(transition)s: %(message)s",
                        code=ConditionSyntaxError.code,
                        params={"transition": self._label(), "message": exc.message},
                    )
                )
        if errors:
            raise ValidationError(errors)


def _version_key(related_name: str, help_text: str) -> models.ForeignKey:
    """A reference to a published version: protected, since instances and history rows must
    keep saying which version they ran on."""
    return models.ForeignKey(
        WorkflowVersion, on_delete=models.PROTECT, related_name=related_name, help_text=help_text
    )


class WorkflowInstanceQuerySet(models.QuerySet):
    def unfinished(self) -> WorkflowInstanceQuerySet:
        return self.filter(state__in=UNFINISHED_STATES)

    def for_object(self, content_object: models.Model) -> WorkflowInstanceQuerySet:
        content_type = ContentType.objects.get_for_model(content_object)
        return self.filter(content_type=content_type, object_id=str(content_object.pk))


class WorkflowInstance(models.Model):
    """One run of a workflow for one object (any model, through a generic foreign key)."""

    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="instances")
    definition_version = _version_key(
        "instances", "The published version the instance runs on (until it is migrated)."
    )
    current_step = models.ForeignKey(WorkflowStep, on_delete=models.PROTECT, related_name="+")
    current_step_status = models.ForeignKey(
        WorkflowStepStatus, on_delete=models.PROTECT, related_name="+"
    )
    state = models.CharField(
        max_length=16, choices=InstanceState.choices, default=InstanceState.ACTIVE
    )
    version = models.PositiveIntegerField(default=0, help_text="Increases by one on every change.")
    last_sequence = models.PositiveIntegerField(
        default=0,
        editable=False,
        help_text="The sequence number of its newest history row (changes and notes).",
    )
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE, related_name="+")
    # Text, so integer, UUID and string primary keys all work.
    object_id = models.CharField(max_length=255)
    content_object = GenericForeignKey("content_type", "object_id")

    objects = WorkflowInstanceQuerySet.as_manager()

    class Meta:
        ordering = ("-started_at", "-id")
        indexes = [
            models.Index(fields=["content_type", "object_id"], name="django_steps_instance_object"),
            models.Index(fields=["state"], name="django_steps_instance_state"),
            # The API's default ordering (newest first by id) within one workflow (the dashboard's
            # lists), and the ordering by start time.
            models.Index(fields=["workflow", "id"], name="django_steps_inst_wf_id"),
            models.Index(fields=["started_at", "id"], name="django_steps_inst_started"),
            # Counts per workflow by state and by current step.
            models.Index(
                fields=["workflow", "state", "current_step"], name="django_steps_inst_wf_state"
            ),
        ]
        permissions = [
            ("migrate_workflowinstance", "Can migrate workflow instances to another version"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow", "content_type", "object_id"],
                condition=Q(state__in=UNFINISHED_STATES),
                name="django_steps_one_unfinished_instance",
            )
        ]

    def __str__(self) -> str:
        return f"{self.workflow_id}:{self.content_type_id}:{self.object_id} ({self.state})"

    def is_completed(self) -> bool:
        """True for completed and cancelled instances, as in the original."""
        return self.state in FINISHED_STATES

    @property
    def is_finished(self) -> bool:
        return self.is_completed()

    @property
    def is_on_hold(self) -> bool:
        return self.state == InstanceState.ON_HOLD

    @property
    def last_event(self) -> WorkflowEvent | None:
        """The newest event of the history (``None`` before the first). A service sets it on the
        instance it returns (the row it wrote, no query); otherwise it is read each time."""
        written = self.__dict__.get("_last_event")
        if written is not None:
            return written
        return self.events.order_by("-txid", "-position").first() if self.pk else None

    @last_event.setter
    def last_event(self, event: WorkflowEvent | None) -> None:
        self.__dict__["_last_event"] = event

    def refresh_from_db(self, *args, **kwargs) -> None:
        super().refresh_from_db(*args, **kwargs)
        self.__dict__.pop("_last_event", None)  # re-read: another change may have followed

    @property
    def is_awaiting_transition(self) -> bool:
        """A completion status is set but no transition matched yet: retry with
        :func:`django_steps.services.advance_workflow_instance`."""
        return self.state == InstanceState.ACTIVE and self.current_step_status.is_completion_status


class WorkflowEvent(models.Model):
    """One row of an instance's append-only history; every change writes exactly one.

    ``sequence`` numbers an instance's events 1, 2, 3…; ``version`` is the instance's version
    after the event (a note, :data:`~django_steps.choices.NOTE_KINDS`, leaves it unchanged).
    ``(txid, position)`` orders the global history so that a reader never skips an event that
    commits late: see :mod:`django_steps.history` for how it is assigned and read (PostgreSQL
    transaction ids with the snapshot's ``xmin`` as visibility horizon; on SQLite, whose
    writers take turns, ``txid`` is 0 and ``position`` counts 1, 2, 3…). :attr:`cursor` is
    the pair as one number, the cursor clients resume from.
    """

    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="events")
    workflow = models.ForeignKey(Workflow, on_delete=models.PROTECT, related_name="+")
    definition_version = _version_key(
        "+", "The published version the instance ran on after the event."
    )
    sequence = models.PositiveIntegerField()
    version = models.PositiveIntegerField(help_text="The instance's version after the event.")
    txid = models.BigIntegerField(
        default=0, editable=False, help_text="Writing transaction (PostgreSQL), else 0."
    )
    position = models.BigIntegerField(editable=False, help_text="Order within `txid`.")
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    state = models.CharField(
        max_length=16,
        choices=InstanceState.choices,
        help_text="The instance's state after the event.",
    )
    # null, not "": there is no state before STARTED, and the API's enum reads it as null.
    from_state = models.CharField(  # noqa: DJ001
        max_length=16,
        choices=InstanceState.choices,
        null=True,
        blank=True,
        help_text="The instance's state before the event (null for STARTED).",
    )
    from_step = models.ForeignKey(
        WorkflowStep, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    from_status = models.ForeignKey(
        WorkflowStepStatus, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    to_step = models.ForeignKey(WorkflowStep, on_delete=models.PROTECT, related_name="+")
    to_status = models.ForeignKey(WorkflowStepStatus, on_delete=models.PROTECT, related_name="+")
    requested_status = models.ForeignKey(
        WorkflowStepStatus,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="The status named in the update that caused this event, if any.",
    )
    transition = models.ForeignKey(
        WorkflowTransition, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    context = models.JSONField(null=True, blank=True, help_text="The CEL context used, if any.")
    detail = models.JSONField(
        null=True,
        blank=True,
        help_text='What else the event records, e.g. {"reason": "DEADLINE"} for a change the '
        "system made, or the user a work item was delegated to.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("txid", "position")
        indexes = [
            models.Index(
                fields=["workflow", "txid", "position"], name="django_steps_event_wf_cursor"
            ),
            models.Index(
                fields=["instance", "txid", "position"], name="django_steps_event_in_cursor"
            ),
            # An instance's events by id (the API's history pages by (txid, position) since its
            # edge cursors are the events' own: graphql_api/api/event_cursors.py).
            models.Index(fields=["instance", "id"], name="django_steps_event_in_id"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "sequence"], name="django_steps_event_sequence_unique"
            ),
            models.UniqueConstraint(
                fields=["txid", "position"], name="django_steps_event_cursor_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.cursor} {self.kind} (instance {self.instance_id} seq {self.sequence})"

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ValueError("Workflow history is append-only; events cannot be changed.")
        super().save(*args, **kwargs)

    @cached_property
    def cursor(self) -> int:
        """This event's place in the global history as one number (see
        :mod:`django_steps.history`)."""
        from .history import cursor_of  # history imports these models: import it on use

        return cursor_of(self.txid, self.position)


class WorkflowTimer(models.Model):
    """A deadline or reminder of the step an instance is on: armed in the transaction that
    enters the step, removed in the one that leaves it, fired once by a worker (see
    :mod:`django_steps.deadlines`)."""

    class Kind(models.TextChoices):
        DEADLINE = "DEADLINE", "Deadline"
        REMINDER = "REMINDER", "Reminder"
        #: A deadline that could not be computed (its ``at`` gave no timestamp): the worker
        #: records a DEADLINE_ERROR note at once.
        ERROR = "ERROR", "Error"

    instance = models.ForeignKey(WorkflowInstance, on_delete=models.CASCADE, related_name="timers")
    step = models.ForeignKey(WorkflowStep, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    due_at = models.DateTimeField(
        null=True, blank=True, help_text="When it fires (null while the instance is on hold)."
    )
    remaining = models.DurationField(
        null=True, blank=True, help_text="The time that was left when the instance was put on hold."
    )
    armed_version = models.PositiveIntegerField(
        help_text="The instance's version when the timer was armed."
    )
    fired_at = models.DateTimeField(null=True, blank=True)
    detail = models.JSONField(null=True, blank=True, help_text="Why an ERROR timer failed.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("due_at", "id")
        indexes = [
            # The workers' sweep: unfired timers by due time.
            models.Index(
                fields=["due_at"],
                condition=Q(fired_at__isnull=True),
                name="django_steps_timer_due",
            ),
            models.Index(fields=["instance", "kind"], name="django_steps_timer_instance"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} of instance {self.instance_id} due {self.due_at}"


# Work items live in django_steps/work_models.py (this module would pass 600 lines); imported
# here, last, so Django registers them with the app: they refer to the models above.
from .work_models import WorkItem, WorkItemCandidate  # noqa: E402, F401
