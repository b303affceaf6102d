# invoices/schema.py
from typing import Optional

import strawberry
import strawberry_django
from django.contrib.auth import get_user_model
from django.db.models import F
from strawberry_django.auth.utils import get_current_user
from strawberry_django.permissions import HasPerm

from django_steps.models import WorkflowInstance
from graphql_api.composition import WorkflowInstanceType

from .models import Invoice


@strawberry_django.type(get_user_model(), name="User")
class UserType:
    username: strawberry.auto
    email: strawberry.auto


@strawberry_django.type(Invoice, name="Invoice")
class InvoiceType:
    id: strawberry.auto
    number: strawberry.auto
    customer: strawberry.auto
    amount: strawberry.auto

    @strawberry_django.field(
        description="The unfinished workflow instance, else the latest (null if none)."
    )
    def workflow(self, root: strawberry.Parent[Invoice]) -> Optional[WorkflowInstanceType]:
        # A queryset of django-steps' type: its read rules decide whether you see the instance.
        instances = WorkflowInstance.objects.for_object(root)
        return instances.order_by(F("completed_at").desc(nulls_first=True), "-started_at")


@strawberry.type
class Query:
    invoices: list[InvoiceType] = strawberry_django.field(
        extensions=[HasPerm("invoices.view_invoice")]
    )

    @strawberry_django.field(description="The logged-in user (null if anonymous).")
    def viewer(self, info: strawberry.Info) -> Optional[UserType]:
        user = get_current_user(info)
        return user if user.is_authenticated else None
