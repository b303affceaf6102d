"""The graphene-django schema of the peer (imported after django.setup()).

Written as a competent graphene-django user would, doing the same permission work as ours:
the instances are those ``django_steps.authorization.visible_instances`` keeps (the
``view_workflowinstance`` permission and the project's visibility rule, a queryset filter), the
history those ``visible_events`` keeps; the related rows come with ``select_related`` and one
``Prefetch`` of the history (a sliced queryset: Django pages it per instance with a window
function, at most the largest page, 100) — graphene-django has no optimizer, so the resolver
says what to load. Same field names as ours, so both serve the same query text.
"""


def build_schema():
    import graphene
    from django.db.models import Prefetch
    from graphene import relay
    from graphene.types.generic import GenericScalar
    from graphene_django import DjangoConnectionField, DjangoObjectType

    from bench._peer_work import update_status
    from django_steps import authorization
    from django_steps.models import (
        Workflow,
        WorkflowEvent,
        WorkflowInstance,
        WorkflowStep,
        WorkflowStepStatus,
    )

    class WorkflowType(DjangoObjectType):
        class Meta:
            model = Workflow
            fields = ("id", "name")

    class StepType(DjangoObjectType):
        class Meta:
            model = WorkflowStep
            fields = ("id", "name")

    class StatusType(DjangoObjectType):
        class Meta:
            model = WorkflowStepStatus
            fields = ("id", "name")

    class EventType(DjangoObjectType):
        cursor = graphene.String(required=True)

        class Meta:
            model = WorkflowEvent
            fields = ("id", "kind", "sequence", "created_at")
            interfaces = (relay.Node,)

        def resolve_cursor(self, info):
            return str(self.cursor)

    class InstanceConnectionBase(relay.Connection):
        total_count = graphene.Int(required=True)

        class Meta:
            abstract = True

        def resolve_total_count(self, info):
            return self.length

    class InstanceType(DjangoObjectType):
        history = relay.ConnectionField(EventType._meta.connection, required=True)

        class Meta:
            model = WorkflowInstance
            name = "WorkflowInstance"
            fields = ("id", "state", "version", "workflow", "current_step", "current_step_status")
            interfaces = (relay.Node,)
            connection_class = InstanceConnectionBase

        def resolve_history(self, info, **kwargs):
            return self.history_page

    class Query(graphene.ObjectType):
        workflow_instances = DjangoConnectionField(InstanceType)

        def resolve_workflow_instances(self, info, **kwargs):
            user = info.context.user
            events = authorization.visible_events(user, WorkflowEvent.objects.order_by("pk"))[:100]
            return authorization.visible_instances(
                user,
                WorkflowInstance.objects.select_related(
                    "workflow", "current_step", "current_step_status"
                )
                .prefetch_related(Prefetch("events", queryset=events, to_attr="history_page"))
                .order_by("-pk"),
            )

    class OperationMessage(graphene.ObjectType):
        code = graphene.String()
        message = graphene.String(required=True)

    class OperationInfo(graphene.ObjectType):
        messages = graphene.List(graphene.NonNull(OperationMessage), required=True)

    class UpdateWorkflowStepStatusPayload(graphene.Union):
        class Meta:
            types = (InstanceType, OperationInfo)

        @classmethod
        def resolve_type(cls, instance, info):
            return OperationInfo if isinstance(instance, OperationInfo) else InstanceType

    class UpdateWorkflowStepStatusInput(graphene.InputObjectType):
        instance_id = graphene.ID(required=True)
        status_name = graphene.String()
        context = GenericScalar()
        expected_version = graphene.Int()

    class Mutation(graphene.ObjectType):
        update_workflow_step_status = graphene.Field(
            UpdateWorkflowStepStatusPayload,
            required=True,
            input=UpdateWorkflowStepStatusInput(required=True),
        )

        def resolve_update_workflow_step_status(self, info, input):
            result = update_status(
                info.context.user, input.instance_id, input.status_name, input.expected_version
            )
            if isinstance(result, dict):
                return OperationInfo(messages=[OperationMessage(**m) for m in result["messages"]])
            return result

    return graphene.Schema(query=Query, mutation=Mutation)


schema = build_schema()
