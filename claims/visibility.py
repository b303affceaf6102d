"""The demo's visibility rule: which workflow instances a user sees.

Named in the demo settings as ``DJANGO_STEPS["VISIBLE_INSTANCES"]``; django-steps applies it to
every list, lookup, nested field, history and subscription (see
``django_steps/authorization.py``). Like ``claims.view_claim`` (:mod:`claims.rules`): reviewers
(and users with the permission for every claim, e.g. superusers) see every claim's instances;
everyone else only those of the claims they own. Instances on other models are left to the
default (everything, for users with ``view_workflowinstance``).

One queryset filter, no Python per row: a list page costs the same whatever the user.
"""

from __future__ import annotations

from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast

from .models import Claim


def visible_instances(user, queryset: QuerySet) -> QuerySet:
    if user.has_perm("claims.view_claim"):  # without an object: every claim (reviewers, superusers)
        return queryset
    own_claims = (
        Claim.objects.filter(owner_id=user.pk).annotate(key=Cast("pk", CharField())).values("key")
    )
    claim_type = ContentType.objects.get_for_model(Claim)
    return queryset.filter(~Q(content_type=claim_type) | Q(object_id__in=own_claims))
