"""The graphene-django schema of the peer (imported after django.setup())."""

def build_schema():
    import graphene
    from graphene import relay
    from graphene_django import DjangoConnectionField, DjangoObjectType

    from django_steps.models import Workflow, WorkflowEvent, WorkflowInstance, WorkflowStep, WorkflowStepStatus

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
        cursor = graphene.String()

        class Meta:
            model = WorkflowEvent
            fields = ("id", "kind", "created_at")

        def resolve_cursor(self, info):
            return str(self.position)

    class InstanceConnectionBase(relay.Connection):
        total_count = graphene.Int(required=True)

        class Meta:
            abstract = True

        def resolve_total_count(self, info):
            return self.length

    class InstanceType(DjangoObjectType):
        history = graphene.List(graphene.NonNull(EventType), required=True)

        class Meta:
            model = WorkflowInstance
            fields = ("id", "state", "version", "workflow", "current_step", "current_step_status")
            interfaces = (relay.Node,)
            connection_class = InstanceConnectionBase

        def resolve_history(self, info):
            return list(self.events.all())

    class Query(graphene.ObjectType):
        workflow_instances = DjangoConnectionField(InstanceType)

        def resolve_workflow_instances(self, info, **kwargs):
            return (
                WorkflowInstance.objects.select_related("workflow", "current_step", "current_step_status")
                .prefetch_related("events")
                .order_by("-started_at", "-id")
            )

    return graphene.Schema(query=Query)


schema = build_schema()
