"""django-steps 0.2.0 squashes the migrations of 0.1.0 (0001 to 0012) into this one: the schema
that chain ends in, written from its final state with each table's columns in the chain's order.
The chain's data migrations (0002, 0004, 0007, 0009) only filled rows that existed before them,
and a database this migration creates has none, so they are gone. A database that 0.1.0 took to
0012 counts this one as applied (``replaces``); one part-way through must finish 0.1.0's chain
first (system check ``django_steps.E010`` says so)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    replaces = [
        ("django_steps", "0001_initial"),
        ("django_steps", "0002_workflow_definition_token"),
        ("django_steps", "0003_commit_order_without_a_shared_lock"),
        ("django_steps", "0004_trust_model"),
        ("django_steps", "0005_paging_indexes"),
        ("django_steps", "0006_versions"),
        ("django_steps", "0007_publish_existing_definitions"),
        ("django_steps", "0008_versions_required"),
        ("django_steps", "0009_event_notes"),
        ("django_steps", "0010_deadlines"),
        ("django_steps", "0011_work_items"),
        ("django_steps", "0012_stats_indexes"),
    ]

    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Workflow",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "name",
                    models.CharField(
                        help_text="Unique name of the workflow.", max_length=255, unique=True
                    ),
                ),
                ("description", models.TextField(blank=True, default="")),
                ("definition_version", models.PositiveIntegerField(default=0, editable=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "content_types",
                    models.ManyToManyField(
                        blank=True,
                        help_text="Models whose objects this workflow may be started on.",
                        related_name="+",
                        to="contenttypes.contenttype",
                    ),
                ),
                (
                    "definition_hash",
                    models.CharField(blank=True, default="", editable=False, max_length=64),
                ),
            ],
            options={
                "ordering": ("name",),
                "indexes": [],
                "constraints": [],
            },
        ),
        migrations.CreateModel(
            name="WorkflowVersion",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("number", models.PositiveIntegerField(help_text="1, 2, 3… per workflow.")),
                ("document", models.JSONField()),
                ("content_hash", models.CharField(max_length=64)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "workflow",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="versions",
                        to="django_steps.workflow",
                    ),
                ),
            ],
            options={
                "ordering": ("workflow", "-number"),
                "indexes": [],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("workflow", "number"), name="django_steps_version_number_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="WorkflowStep",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=255)),
                ("description", models.TextField(blank=True, default="")),
                ("order", models.PositiveIntegerField(default=0)),
                ("is_initial_step", models.BooleanField(default=False)),
                ("is_final_step", models.BooleanField(default=False)),
                (
                    "workflow",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="steps",
                        to="django_steps.workflow",
                    ),
                ),
                (
                    "retired",
                    models.BooleanField(
                        default=False,
                        editable=False,
                        help_text="Removed from the definition; kept because published versions and history refer to it (adding the name again brings it back).",
                    ),
                ),
                (
                    "deadline",
                    models.JSONField(
                        blank=True,
                        help_text='When the step is due: {"after": "P2D"} (or "at": a CEL timestamp), an optional "status" to set then and "remind_before": "PT4H". See django_steps.deadlines.',
                        null=True,
                    ),
                ),
                (
                    "assignees",
                    models.JSONField(
                        blank=True,
                        default=None,
                        help_text='Who acts on the step: {"groups": [names], "expression": "CEL giving users"}; empty: anyone who may change the instance.',
                        null=True,
                    ),
                ),
            ],
            options={
                "ordering": ("workflow", "order", "id"),
                "indexes": [],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("workflow", "name"), name="django_steps_step_name_unique"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="WorkflowStepStatus",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=255)),
                ("description", models.TextField(blank=True, default="")),
                ("is_default_status", models.BooleanField(default=False)),
                ("is_completion_status", models.BooleanField(default=False)),
                ("is_cancellation_status", models.BooleanField(default=False)),
                ("is_on_hold_status", models.BooleanField(default=False)),
                (
                    "step",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="statuses",
                        to="django_steps.workflowstep",
                    ),
                ),
                (
                    "permission",
                    models.CharField(
                        blank=True,
                        default="",
                        help_text='Permission needed to set this status ("app_label.codename"), checked with user.has_perm(permission, content_object); empty: anyone who may change the instance.',
                        max_length=255,
                    ),
                ),
                (
                    "retired",
                    models.BooleanField(
                        default=False,
                        editable=False,
                        help_text="Removed from the definition; kept because published versions and history refer to it (adding the name again brings it back).",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "workflow step statuses",
                "ordering": ("step", "id"),
                "indexes": [],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("step", "name"), name="django_steps_status_name_unique"
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("is_default_status", True)),
                        fields=("step",),
                        name="django_steps_one_default_status",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("is_cancellation_status", True)),
                        fields=("step",),
                        name="django_steps_one_cancellation_status",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("is_on_hold_status", True)),
                        fields=("step",),
                        name="django_steps_one_on_hold_status",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="WorkflowTransition",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "condition",
                    models.TextField(
                        blank=True, default="", help_text="CEL expression; empty = always."
                    ),
                ),
                (
                    "priority",
                    models.IntegerField(default=0, help_text="Higher priorities are tried first."),
                ),
                ("description", models.TextField(blank=True, default="")),
                (
                    "from_step",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="outgoing_transitions",
                        to="django_steps.workflowstep",
                    ),
                ),
                (
                    "to_step",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="incoming_transitions",
                        to="django_steps.workflowstep",
                    ),
                ),
                (
                    "workflow",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="transitions",
                        to="django_steps.workflow",
                    ),
                ),
                (
                    "retired",
                    models.BooleanField(
                        default=False,
                        editable=False,
                        help_text="Removed from the definition; kept because published versions and history refer to it (adding the name again brings it back).",
                    ),
                ),
            ],
            options={
                "ordering": ("workflow", "from_step__order", "-priority", "id"),
                "indexes": [],
                "constraints": [],
            },
        ),
        migrations.CreateModel(
            name="WorkflowInstance",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("ACTIVE", "Active"),
                            ("ON_HOLD", "On hold"),
                            ("COMPLETED", "Completed"),
                            ("CANCELLED", "Cancelled"),
                        ],
                        default="ACTIVE",
                        max_length=16,
                    ),
                ),
                (
                    "version",
                    models.PositiveIntegerField(
                        default=0, help_text="Increases by one on every change."
                    ),
                ),
                ("started_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("completed_at", models.DateTimeField(blank=True, null=True)),
                ("object_id", models.CharField(max_length=255)),
                (
                    "content_type",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="contenttypes.contenttype",
                    ),
                ),
                (
                    "workflow",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="instances",
                        to="django_steps.workflow",
                    ),
                ),
                (
                    "current_step",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflowstep",
                    ),
                ),
                (
                    "current_step_status",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflowstepstatus",
                    ),
                ),
                (
                    "definition_version",
                    models.ForeignKey(
                        help_text="The published version the instance runs on (until it is migrated).",
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="instances",
                        to="django_steps.workflowversion",
                    ),
                ),
                (
                    "last_sequence",
                    models.PositiveIntegerField(
                        default=0,
                        editable=False,
                        help_text="The sequence number of its newest history row (changes and notes).",
                    ),
                ),
            ],
            options={
                "ordering": ("-started_at", "-id"),
                "indexes": [
                    models.Index(
                        fields=["content_type", "object_id"], name="django_steps_instance_object"
                    ),
                    models.Index(fields=["state"], name="django_steps_instance_state"),
                    models.Index(fields=["started_at", "id"], name="django_steps_inst_started"),
                    models.Index(fields=["workflow", "id"], name="django_steps_inst_wf_id"),
                    models.Index(
                        fields=["workflow", "state", "current_step", "current_step_status"],
                        name="django_steps_inst_wf_state",
                    ),
                    models.Index(
                        fields=["workflow", "content_type", "object_id"],
                        name="django_steps_inst_wf_obj",
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("state__in", ("ACTIVE", "ON_HOLD"))),
                        fields=("workflow", "content_type", "object_id"),
                        name="django_steps_one_unfinished_instance",
                    )
                ],
                "permissions": [
                    (
                        "migrate_workflowinstance",
                        "Can migrate workflow instances to another version",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="WorkflowEvent",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sequence", models.PositiveIntegerField()),
                (
                    "position",
                    models.BigIntegerField(editable=False, help_text="Order within `txid`."),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("STARTED", "Started"),
                            ("STATUS_CHANGED", "Status changed"),
                            ("ADVANCED", "Advanced"),
                            ("NO_TRANSITION", "No transition"),
                            ("ON_HOLD", "On hold"),
                            ("RESUMED", "Resumed"),
                            ("CANCELLED", "Cancelled"),
                            ("COMPLETED", "Completed"),
                            ("MIGRATED", "Migrated"),
                            ("REMINDER", "Reminder"),
                            ("DEADLINE_PASSED", "Deadline passed"),
                            ("DEADLINE_ERROR", "Deadline error"),
                            ("CLAIMED", "Claimed"),
                            ("RELEASED", "Released"),
                            ("DELEGATED", "Delegated"),
                        ],
                        max_length=20,
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("ACTIVE", "Active"),
                            ("ON_HOLD", "On hold"),
                            ("COMPLETED", "Completed"),
                            ("CANCELLED", "Cancelled"),
                        ],
                        help_text="The instance's state after the event.",
                        max_length=16,
                    ),
                ),
                (
                    "context",
                    models.JSONField(
                        blank=True, help_text="The CEL context used, if any.", null=True
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "actor",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "workflow",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflow",
                    ),
                ),
                (
                    "instance",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="django_steps.workflowinstance",
                    ),
                ),
                (
                    "from_step",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflowstep",
                    ),
                ),
                (
                    "to_step",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflowstep",
                    ),
                ),
                (
                    "from_status",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflowstepstatus",
                    ),
                ),
                (
                    "requested_status",
                    models.ForeignKey(
                        blank=True,
                        help_text="The status named in the update that caused this event, if any.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflowstepstatus",
                    ),
                ),
                (
                    "to_status",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflowstepstatus",
                    ),
                ),
                (
                    "transition",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="django_steps.workflowtransition",
                    ),
                ),
                (
                    "txid",
                    models.BigIntegerField(
                        default=0,
                        editable=False,
                        help_text="Writing transaction (PostgreSQL), else 0.",
                    ),
                ),
                (
                    "definition_version",
                    models.ForeignKey(
                        help_text="The published version the instance ran on after the event.",
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflowversion",
                    ),
                ),
                (
                    "version",
                    models.PositiveIntegerField(
                        help_text="The instance's version after the event."
                    ),
                ),
                (
                    "from_state",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("ACTIVE", "Active"),
                            ("ON_HOLD", "On hold"),
                            ("COMPLETED", "Completed"),
                            ("CANCELLED", "Cancelled"),
                        ],
                        help_text="The instance's state before the event (null for STARTED).",
                        max_length=16,
                        null=True,
                    ),
                ),
                (
                    "detail",
                    models.JSONField(
                        blank=True,
                        help_text='What else the event records, e.g. {"reason": "DEADLINE"} for a change the system made, or the user a work item was delegated to.',
                        null=True,
                    ),
                ),
            ],
            options={
                "ordering": ("txid", "position"),
                "indexes": [
                    models.Index(
                        fields=["workflow", "txid", "position"], name="django_steps_event_wf_cursor"
                    ),
                    models.Index(
                        fields=["instance", "txid", "position"], name="django_steps_event_in_cursor"
                    ),
                    models.Index(fields=["instance", "id"], name="django_steps_event_in_id"),
                    models.Index(
                        fields=["workflow", "created_at"], name="django_steps_event_wf_time"
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("instance", "sequence"), name="django_steps_event_sequence_unique"
                    ),
                    models.UniqueConstraint(
                        fields=("txid", "position"), name="django_steps_event_cursor_unique"
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="WorkflowTimer",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("DEADLINE", "Deadline"),
                            ("REMINDER", "Reminder"),
                            ("ERROR", "Error"),
                        ],
                        max_length=16,
                    ),
                ),
                (
                    "due_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="When it fires (null while the instance is on hold).",
                        null=True,
                    ),
                ),
                (
                    "remaining",
                    models.DurationField(
                        blank=True,
                        help_text="The time that was left when the instance was put on hold.",
                        null=True,
                    ),
                ),
                (
                    "armed_version",
                    models.PositiveIntegerField(
                        help_text="The instance's version when the timer was armed."
                    ),
                ),
                ("fired_at", models.DateTimeField(blank=True, null=True)),
                (
                    "detail",
                    models.JSONField(blank=True, help_text="Why an ERROR timer failed.", null=True),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "instance",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="timers",
                        to="django_steps.workflowinstance",
                    ),
                ),
                (
                    "step",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="django_steps.workflowstep",
                    ),
                ),
            ],
            options={
                "ordering": ("due_at", "id"),
                "indexes": [
                    models.Index(
                        condition=models.Q(("fired_at__isnull", True)),
                        fields=["due_at"],
                        name="django_steps_timer_due",
                    ),
                    models.Index(fields=["instance", "kind"], name="django_steps_timer_instance"),
                ],
                "constraints": [],
            },
        ),
        migrations.CreateModel(
            name="WorkItem",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "candidate_groups",
                    models.JSONField(blank=True, default=list, help_text="Group names."),
                ),
                ("opened_at", models.DateTimeField()),
                ("closed_at", models.DateTimeField(blank=True, null=True)),
                ("due_at", models.DateTimeField(blank=True, null=True)),
                (
                    "claimed_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "closed_event",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="django_steps.workflowevent",
                    ),
                ),
                (
                    "instance",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="work_items",
                        to="django_steps.workflowinstance",
                    ),
                ),
                (
                    "opened_event",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="django_steps.workflowevent",
                    ),
                ),
                (
                    "step",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="django_steps.workflowstep",
                    ),
                ),
            ],
            options={
                "permissions": [
                    (
                        "override_workitem",
                        "Can act on assigned steps without being a candidate or the claimant",
                    )
                ],
                "indexes": [
                    models.Index(
                        condition=models.Q(("closed_at__isnull", True)),
                        fields=["instance"],
                        name="django_steps_item_open",
                    ),
                    models.Index(
                        condition=models.Q(("closed_at__isnull", True)),
                        fields=["claimed_by", "id"],
                        name="django_steps_item_claimed",
                    ),
                ],
                "constraints": [],
            },
        ),
        migrations.CreateModel(
            name="WorkItemCandidate",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("group", models.CharField(blank=True, default="", max_length=150)),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="candidates",
                        to="django_steps.workitem",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(fields=["user", "item"], name="django_steps_cand_user"),
                    models.Index(fields=["group", "item"], name="django_steps_cand_group"),
                ],
                "constraints": [],
            },
        ),
        migrations.AddField(
            model_name="workitem",
            name="candidate_users",
            field=models.ManyToManyField(
                blank=True,
                related_name="+",
                through="django_steps.WorkItemCandidate",
                through_fields=("item", "user"),
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
