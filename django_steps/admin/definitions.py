"""The admin of workflow definitions: workflows, steps, statuses and transitions, the guard
that validates a save and publishes it, and the published versions (see :mod:`django_steps.admin`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IS_POPUP_VAR
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Count, Field, IntegerField, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext as _

from .. import authorization, versions
from ..choices import UNFINISHED_STATES
from ..definitions import check_workflow, dump_document, export_workflow
from ..diagram import workflow_to_mermaid
from ..models import (
    Workflow,
    WorkflowInstance,
    WorkflowStep,
    WorkflowStepStatus,
    WorkflowTransition,
    WorkflowVersion,
)
from ..shape import STATUS, STEP, TRANSITION, WORKFLOW, Part

# --------------------------------------------------------------------------- validation guard


_OVER_LIMIT = "Not saved: the workflow would be over a size limit."


def _form_fields(part: Part) -> tuple[str, ...]:
    """The form fields of one part of the definition: each key of its shape that is a field of
    its model (its columns, and the relations named like their key: a transition's steps, a
    workflow's content types), the free-text description last (the widest column of a row)."""
    model = part.model
    names = []
    for name in part.names:
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            continue
        if isinstance(field, Field):  # not a reverse relation (a workflow's steps: inlines)
            names.append(name)
    return tuple(sorted(names, key=lambda name: name == "description"))


class _Rejected(Exception):
    """The save would put a workflow over a size limit: raised out of the admin's transaction
    (which rolls the whole save back) with the bound form and formsets, to show them again."""

    def __init__(self, problems: list[str], form: Any, formsets: list[Any]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.form = form
        self.formsets = formsets


def _messages(problems: list[dict[str, str]]) -> list[str]:
    return [p["message"] for p in problems]


class DefinitionGuardMixin:
    """Validates the whole workflow after each save; see the module docstring."""

    def workflow_of(self, obj) -> Workflow | None:  # pragma: no cover - overridden
        raise NotImplementedError

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            # The admin runs a POST in transaction.atomic(): _Rejected rolls all of it back.
            return super().changeform_view(request, object_id, form_url, extra_context)
        except _Rejected as rejected:
            return self._render_rejected(request, object_id, form_url, extra_context, rejected)

    def _render_rejected(self, request, object_id, form_url, extra_context, rejected):
        """The change form again, once, with the submitted data and the problems (as the admin
        renders a form that does not validate)."""
        form, formsets = rejected.form, rejected.formsets
        form.add_error(None, ValidationError([_OVER_LIMIT, *rejected.problems]))
        add = object_id is None
        obj = None if add else form.instance
        admin_form = helpers.AdminForm(
            form,
            list(self.get_fieldsets(request, obj)),
            self.get_prepopulated_fields(request, obj),
            self.get_readonly_fields(request, obj),
            model_admin=self,
        )
        inline_formsets = self.get_inline_formsets(
            request, formsets, self.get_inline_instances(request, obj), obj
        )
        media = self.media + admin_form.media
        for inline_formset in inline_formsets:
            media += inline_formset.media
        title = _("Add %s") if add else _("Change %s")
        context = {
            **self.admin_site.each_context(request),
            "title": title % self.opts.verbose_name,
            "subtitle": str(obj) if obj else None,
            "adminform": admin_form,
            "object_id": object_id,
            "original": obj,
            "is_popup": IS_POPUP_VAR in request.POST or IS_POPUP_VAR in request.GET,
            "media": media,
            "inline_admin_formsets": inline_formsets,
            "errors": helpers.AdminErrorList(form, formsets),
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        return self.render_change_form(
            request, context, add=add, change=not add, obj=obj, form_url=form_url
        )

    def save_model(self, request, obj, form, change):
        """Saved by :meth:`save_related`, which first reads the workflow's problems as stored."""

    def save_related(self, request, form, formsets, change):
        obj = form.instance
        workflow = self.workflow_of(obj) if change or not isinstance(obj, Workflow) else None
        before = set()
        if workflow is not None and workflow.pk:
            stored = Workflow.objects.get(pk=workflow.pk)  # as stored, before this save
            before = set(_messages(check_workflow(stored)[0]))
        super().save_model(request, obj, form, change)
        super().save_related(request, form, formsets, change)
        workflow = Workflow.objects.get(pk=self.workflow_of(obj).pk)
        problems, warnings = check_workflow(workflow)
        over = [p["message"] for p in problems if p.get("limit") and p["message"] not in before]
        if over:
            raise _Rejected(over, form, formsets)
        self._publish(request, workflow, _messages(problems), warnings)

    def _publish(self, request, workflow: Workflow, problems: list[str], warnings: list[str]):
        """Publish a valid save as the next version; an invalid one stays a draft (said so)."""
        if problems:
            self.message_user(
                request,
                format_html(
                    "The workflow “{}” is not valid yet: saved as a draft, not published (running "
                    "instances keep their version; new ones start on version {}):<ul>{}</ul>",
                    workflow.name,
                    workflow.definition_version or "— none published yet",
                    format_html_join("", "<li>{}</li>", ((m,) for m in problems)),
                ),
                messages.WARNING,
            )
            return
        before = workflow.definition_version
        version = versions.publish_workflow(workflow, actor=request.user)
        if version.number != before:
            self.message_user(
                request,
                f"Published version {version.number} of “{workflow.name}”: "
                "new instances run on it; running ones keep theirs until migrated.",
                messages.SUCCESS,
            )
        if warnings:
            self.message_user(request, " ".join(warnings), messages.INFO)


# --------------------------------------------------------------------------- definitions


class RetireOnDeleteMixin:
    """Deleting a row in the inline retires it (published versions and history refer to it)
    instead of deleting it or refusing because instances used it."""

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        # The admin refuses deleting rows with protected references; retiring is always fine.
        formset.form = type(
            formset.form.__name__, (formset.form,), {"hand_clean_DELETE": lambda self: None}
        )

        def delete_existing(self, obj, commit=True):
            if commit:
                obj.retire()

        def save_new(self, form, commit=True):
            # A name that was retired comes back as the same row (its id, so its global ID).
            obj = form.save(commit=False)
            setattr(obj, self.fk.name, self.instance)
            retired = (
                type(obj)
                .all_objects.filter(
                    **{self.fk.name: self.instance, "name": getattr(obj, "name", None)},
                    retired=True,
                )
                .first()
                if hasattr(obj, "name")
                else None
            )
            if retired is None:
                return super(formset_class, self).save_new(form, commit=commit)
            for name in form.cleaned_data:
                field = getattr(type(obj), name, None)
                if name not in ("id", "DELETE", self.fk.name) and field is not None:
                    setattr(retired, name, getattr(obj, name))
            retired.retired = False
            if commit:
                retired.save()
            form.instance = retired
            return retired

        formset_class = type(
            formset.__name__,
            (formset,),
            {"delete_existing": delete_existing, "save_new": save_new},
        )
        return formset_class


class WorkflowVersionInline(admin.TabularInline):
    model = WorkflowVersion
    extra = 0
    can_delete = False
    fields = ("number", "created_at", "created_by", "content_hash")
    readonly_fields = fields
    ordering = ("-number",)
    verbose_name_plural = "published versions"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class WorkflowStepInline(RetireOnDeleteMixin, admin.TabularInline):
    model = WorkflowStep
    extra = 0
    fields = (*_form_fields(STEP), "statuses_summary")
    readonly_fields = ("statuses_summary",)
    show_change_link = True  # statuses are edited on the step's page

    @admin.display(description="statuses (edit on the step's page)")
    def statuses_summary(self, step: WorkflowStep) -> str:
        if not step.pk:
            return "—"
        return _statuses_summary(step)


def _statuses_summary(step: WorkflowStep) -> str:
    parts = []
    for status in step.statuses.all():
        roles = [
            label
            for flag, label in (
                ("is_default_status", "default"),
                ("is_completion_status", "completion"),
                ("is_cancellation_status", "cancellation"),
                ("is_on_hold_status", "on hold"),
            )
            if getattr(status, flag)
        ]
        parts.append(f"{status.name} ({', '.join(roles)})" if roles else status.name)
    return ", ".join(parts) or "none"


class WorkflowTransitionInline(RetireOnDeleteMixin, admin.TabularInline):
    model = WorkflowTransition
    fk_name = "workflow"
    extra = 0
    fields = _form_fields(TRANSITION)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in ("from_step", "to_step"):
            object_id = (
                request.resolver_match.kwargs.get("object_id") if request.resolver_match else None
            )
            queryset = WorkflowStep.objects.none()
            if object_id:
                try:
                    queryset = WorkflowStep.objects.filter(workflow_id=int(object_id))
                except ValueError:
                    pass
            kwargs["queryset"] = queryset.order_by("order", "id")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        for name in ("from_step", "to_step"):
            field = formset.form.base_fields.get(name)
            if field is not None:
                field.label_from_instance = lambda step: step.name
        return formset


@admin.register(Workflow)
class WorkflowAdmin(DefinitionGuardMixin, admin.ModelAdmin):
    list_display = ("name", "step_count", "running_instances", "definition_version", "updated_at")
    search_fields = ("name", "description")
    readonly_fields = ("definition_version", "created_at", "updated_at", "diagram", "document")
    # definition_version: the latest published version's number (0: none yet)
    filter_horizontal = ("content_types",)
    fieldsets = (
        (None, {"fields": _form_fields(WORKFLOW)}),
        (
            "Definition",
            {"classes": ("collapse",), "fields": ("definition_version", "diagram", "document")},
        ),
        ("Timestamps", {"classes": ("collapse",), "fields": ("created_at", "updated_at")}),
    )
    inlines = (WorkflowStepInline, WorkflowTransitionInline, WorkflowVersionInline)
    actions = ("validate_definitions",)

    def workflow_of(self, obj: Workflow) -> Workflow:
        return obj

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else self.inlines[:-1]  # no versions yet

    @admin.display(description="steps")
    def step_count(self, workflow: Workflow) -> int:
        return workflow.steps.count()

    def get_queryset(self, request):
        running = authorization.visible_instances(
            request.user,
            WorkflowInstance.objects.filter(workflow=OuterRef("pk"), state__in=UNFINISHED_STATES),
        )
        counted = running.order_by().values("workflow").annotate(n=Count("pk")).values("n")
        return (
            super()
            .get_queryset(request)
            .annotate(
                _running=Coalesce(Subquery(counted, output_field=IntegerField()), 0),
            )
        )

    @admin.display(description="running instances (that you can see)")
    def running_instances(self, workflow: Workflow) -> int:
        return workflow._running

    @admin.display(description="Mermaid diagram")
    def diagram(self, workflow: Workflow) -> str:
        if not workflow.pk:
            return "—"
        return format_html("<pre>{}</pre>", workflow_to_mermaid(workflow))

    @admin.display(description="definition document (YAML; load with manage.py load_workflow)")
    def document(self, workflow: Workflow) -> str:
        if not workflow.pk:
            return "—"
        return format_html("<pre>{}</pre>", dump_document(export_workflow(workflow)))

    @admin.action(description="Validate selected workflows")
    def validate_definitions(self, request, queryset):
        for workflow in queryset:
            problems, warnings = check_workflow(workflow)
            if problems:
                self.message_user(
                    request,
                    f"{workflow.name}: {len(problems)} problem(s): "
                    + "; ".join(_messages(problems)),
                    messages.ERROR,
                )
            else:
                suffix = (" Warnings: " + " ".join(warnings)) if warnings else ""
                self.message_user(request, f"{workflow.name}: valid.{suffix}", messages.SUCCESS)


class WorkflowStepStatusInline(RetireOnDeleteMixin, admin.TabularInline):
    model = WorkflowStepStatus
    extra = 0
    fields = _form_fields(STATUS)


@admin.register(WorkflowStep)
class WorkflowStepAdmin(DefinitionGuardMixin, admin.ModelAdmin):
    list_display = ("name", "workflow", "order", "is_initial_step", "is_final_step", "statuses")
    list_filter = ("workflow",)
    list_select_related = ("workflow",)
    search_fields = ("name", "workflow__name")
    fields = ("workflow", *_form_fields(STEP))
    inlines = (WorkflowStepStatusInline,)

    def workflow_of(self, obj: WorkflowStep) -> Workflow:
        return obj.workflow

    def get_readonly_fields(self, request, obj=None):
        return ("workflow",) if obj is not None else ()

    @admin.display(description="statuses")
    def statuses(self, step: WorkflowStep) -> str:
        return _statuses_summary(step)
