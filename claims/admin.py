"""Admin of the demo's claims: each row shows where the claim's workflows stand."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.contenttypes.admin import GenericTabularInline

from django_steps.authorization import visible_instances
from django_steps.models import WorkflowInstance

from .models import Claim


class WorkflowInstanceInline(GenericTabularInline):
    """The claim's workflow instances the user may see, read-only: changes go through the
    services (GraphQL, the dashboard), which check transitions and write the history."""

    model = WorkflowInstance
    ct_field = "content_type"
    ct_fk_field = "object_id"
    extra = 0
    can_delete = False
    fields = ("workflow", "current_step", "current_step_status", "state", "version", "updated_at")
    readonly_fields = fields
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def get_queryset(self, request):
        return visible_instances(request.user, super().get_queryset(request))


@admin.register(Claim)
class ClaimAdmin(admin.ModelAdmin):
    list_display = ("title", "claimant", "amount", "priority", "workflow_position", "created_at")
    list_filter = ("priority",)
    search_fields = ("title", "claimant")
    inlines = [WorkflowInstanceInline]

    @admin.display(description="Workflow")
    def workflow_position(self, claim: Claim) -> str:
        instances = (
            WorkflowInstance.objects.for_object(claim)
            .select_related("workflow", "current_step", "current_step_status")
            .order_by("-started_at")
        )
        return (
            "; ".join(
                f"{i.workflow.name}: {i.current_step.name} / {i.current_step_status.name} "
                f"({i.get_state_display()})"
                for i in instances
            )
            or "—"
        )
