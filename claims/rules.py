"""Who may do what with a claim, as django-rules predicates (the demo's object permissions).

django-rules' ``ObjectPermissionBackend`` (in ``AUTHENTICATION_BACKENDS``) answers
``user.has_perm(perm, claim)`` with these rules; Django's ``ModelBackend`` still answers for the
permissions stored in the database (the ``demo`` superuser has them all).

- ``claims.view_claim``: the claim's owner, or a reviewer (for every claim).
- ``claims.submit_claim``: the claim's owner (the workflows' "Submitted" and "Withdrawn").
- ``claims.decide_claim``: a reviewer (approve, reject, hold, triage: every other move).

The statuses of the example workflows name these permissions (``permission:`` in
``django_steps/examples/*.yaml``). Which claims' workflow instances a user sees follows
``claims.view_claim``: globally for reviewers, and per claim through the object rule in
:mod:`claims.visibility` (the same owner test as a queryset, for lists). A status set with one of
them sticks: leaving it needs the same permission, unless the new status names one the user
holds (an owner cannot undo a reviewer's "Waiting for Documents" with "New", but may still
withdraw).
"""

from __future__ import annotations

import rules

REVIEWERS = "reviewers"


@rules.predicate
def is_claim_owner(user, claim) -> bool:
    return claim is not None and user.is_authenticated and claim.owner_id == user.pk


is_reviewer = rules.is_group_member(REVIEWERS)

rules.add_perm("claims.view_claim", is_claim_owner | is_reviewer)
rules.add_perm("claims.submit_claim", is_claim_owner)
rules.add_perm("claims.decide_claim", is_reviewer)
