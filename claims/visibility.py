"""The demo's object rule: which claims a user may view, as a queryset.

Named in the demo settings as ``DJANGO_STEPS["VISIBLE_OBJECTS"]["claims.claim"]``. django-steps'
default visibility rule shows a workflow instance to whoever may view its object (see
``django_steps/authorization.py``): users holding ``claims.view_claim`` for every claim (reviewers
through :mod:`claims.rules`, superusers) see every claim's instances without this rule; everyone
else sees those of the claims this rule keeps: their own, as ``claims.view_claim`` says per
object. Instances on any other model (a workflow on users, say) are seen only by who may view
that model.

One queryset filter, no Python per row: a list page costs the same whatever the user.
"""

from __future__ import annotations

from django.db.models import QuerySet


def visible_claims(user, queryset: QuerySet) -> QuerySet:
    return queryset.filter(owner_id=user.pk)
