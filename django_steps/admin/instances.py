"""The admin of workflow instances and their history, read-only and filtered by the visibility
rule, with the hold / resume / cancel / migrate actions (see :mod:`django_steps.admin`).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Q
from django.template.response import TemplateResponse

from .. import authorization, services, versions
from ..exceptions import WorkflowError
from ..models import (
    Workflow,
    WorkflowEvent,
    WorkflowInstance,
)
from ..selectors import EVENT_RELATIONS

# --------------------------------------------------------------------------- instances

VIEW_WORKFLOW = "django_steps.view_workflow"


class VisibleWorkflowFilter(admin.RelatedFieldListFilter):
    """A workflow list filter offering only the workflows the user may see: every one with
    ``view_workflow``, else those of the instances the visibility rule shows them (whose names
    their rows show anyway) — as GraphQL shows a definition only with an instance it may show."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        user = request.user
        limit = None
        if not user.has_perm(VIEW_WORKFLOW):
            seen = authorization.visible_instances(user, WorkflowInstance.objects.all())
            limit = Q(pk__in=seen.order_by().values("workflow_id"))
        return field.get_choices(include_blank=False, ordering=ordering, limit_choices_to=limit)


class WorkflowEventInline(admin.TabularInline):
    model = WorkflowEvent
    fk_name = "instance"
    extra = 0
    can_delete = False
    ordering = ("sequence",)
    fields = ("sequence", "cursor", "kind", "state", *EVENT_RELATIONS, "context", "created_at")
    readonly_fields = fields
    verbose_name_plural = "history"

    def get_queryset(self, request):
        return authorization.visible_events(request.user, super().get_queryset(request))

    def get_fields(self, request, obj=None):
        return _without_hidden_context(request, obj, super().get_fields(request, obj))

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def _without_hidden_context(request, instance, fields):
    """``fields`` without ``context`` unless the user may view the instance's object (the stored
    context holds its fields)."""
    if instance is not None and authorization.may_view_object(
        request.user, instance.content_object
    ):
        return fields
    return [name for name in fields if name != "context"]


@admin.register(WorkflowInstance)
class WorkflowInstanceAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "workflow",
        "content_object_display",
        "definition_version_number",
        "current_step",
        "current_step_status",
        "state",
        "version",
        "updated_at",
    )
    list_filter = ("state", ("workflow", VisibleWorkflowFilter))
    list_select_related = (
        "workflow",
        "definition_version",
        "current_step",
        "current_step_status",
        "content_type",
    )
    search_fields = ("object_id", "workflow__name")
    inlines = (WorkflowEventInline,)
    actions = ("hold", "resume", "cancel", "migrate_to_latest")
    readonly_fields = (
        "workflow",
        "definition_version_number",
        "content_type",
        "object_id",
        "content_object_display",
        "current_step",
        "current_step_status",
        "state",
        "version",
        "started_at",
        "updated_at",
        "completed_at",
    )
    fields = readonly_fields

    def get_queryset(self, request):
        visible = authorization.visible_instances(request.user, super().get_queryset(request))
        return visible.defer("definition_version__document").prefetch_related("content_object")

    @admin.display(description="definition version", ordering="definition_version__number")
    def definition_version_number(self, instance: WorkflowInstance) -> int:
        return instance.definition_version.number

    @admin.display(description="object")
    def content_object_display(self, instance: WorkflowInstance) -> str:
        obj = instance.content_object
        return (
            str(obj)
            if obj is not None
            else f"{instance.content_type} #{instance.object_id} (deleted)"
        )

    # Read-only: no add, no delete, and object pages are view-only. The changelist keeps the
    # model-level change permission so the actions below (which need it) are offered.
    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None and super().has_change_permission(request)

    def _run(self, request, queryset, service, done: str) -> None:
        changed = 0
        for instance in queryset.order_by("pk"):
            try:
                service(instance, actor=request.user)
            except WorkflowError as exc:
                self.message_user(
                    request, f"Instance {instance.pk}: {exc.code}: {exc.message}", messages.ERROR
                )
            else:
                changed += 1
        if changed:
            self.message_user(request, f"{changed} instance(s) {done}.", messages.SUCCESS)

    @admin.action(description="Put on hold", permissions=["change"])
    def hold(self, request, queryset):
        self._run(request, queryset, services.set_workflow_on_hold, "put on hold")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request, queryset):
        self._run(request, queryset, services.resume_workflow_instance, "resumed")

    @admin.action(description="Cancel", permissions=["change"])
    def cancel(self, request, queryset):
        self._run(request, queryset, services.cancel_workflow_instance, "cancelled")

    def has_migrate_permission(self, request) -> bool:
        return request.user.has_perm(versions.MIGRATE_INSTANCE)

    @admin.action(description="Migrate to the latest version", permissions=["migrate"])
    def migrate_to_latest(self, request, queryset):
        """A confirmation page with the dry run per workflow; "Migrate" applies it."""
        ids = list(queryset.values_list("pk", flat=True))
        plans = []
        try:
            for workflow in Workflow.objects.filter(instances__pk__in=ids).distinct():
                latest = workflow.latest_version
                if latest is not None:
                    plans.append(
                        versions.plan_migration(
                            workflow, latest, filters={"ids": ids}, actor=request.user
                        )
                    )
        except WorkflowError as exc:
            self.message_user(request, f"{exc.code}: {exc.message}", messages.ERROR)
            return None
        if request.POST.get("apply") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Migrate to the latest version",
                "plans": plans,
                "ids": ids,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/django_steps/migrate_to_latest.html", context)
        migrated, failed = 0, 0
        for plan in plans:
            result = versions.migrate_instances(
                plan.workflow, plan.to_version, actor=request.user, plan=plan
            )
            migrated += len(result.migrated)
            for pk, code in result.failed.items():
                failed += 1
                self.message_user(request, f"Instance {pk}: {code}", messages.ERROR)
            for move in result.blocked:
                self.message_user(
                    request,
                    f"Instance {move.instance_id}: {move.blocked}: {move.reason}",
                    messages.WARNING,
                )
        self.message_user(
            request, f"{migrated} instance(s) migrated to the latest version.", messages.SUCCESS
        )
        return None


class ReadOnlyAdminMixin:
    """Rows the admin shows and never adds, changes or deletes (history, work items)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WorkflowEvent)
class WorkflowEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "cursor",
        "instance",
        "sequence",
        "kind",
        "state",
        "from_step",
        "to_step",
        "to_status",
        "actor",
        "created_at",
    )
    list_filter = ("kind", ("workflow", VisibleWorkflowFilter))
    list_select_related = ("instance", "from_step", "to_step", "to_status", "actor")
    search_fields = ("instance__object_id",)

    def get_queryset(self, request):
        return authorization.visible_events(request.user, super().get_queryset(request))

    def get_fields(self, request, obj=None):
        instance = obj.instance if obj is not None else None
        return _without_hidden_context(request, instance, super().get_fields(request, obj))
