"""The inbox costs O(page), and work items cost little on a status change.

* ``me { inbox(first: 20) }`` through the GraphQL view (Django's test client: middleware,
  session, view, schema, optimizer) for a user with 10,000 open work items vs one with 100,
  among 333,000 instances each with an open work item (``--quick``: 1,000 vs 10 among 3,330);
  target ≤ 2×. Also with ``totalCount`` (a ``COUNT`` of the user's items: O(their items) by
  nature, no target). Rows are bulk-inserted; PostgreSQL then gets ``ANALYZE``.
* A status change that leaves an assigned step for another assigned one (closing one work item,
  opening the next: group candidates) vs the same change in the same workflow without
  ``assignees``, through ``update_workflow_step_status``; target ≤ 1.15×. Alternated A/B,
  medians.

    python bench/inbox.py [--quick] [--json]
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import FIVE_STEPS, bench_arguments, emit, setup_django, versus

INBOX = """query Inbox { me { inbox(first: 20) {
  edges { node { id openedAt dueAt candidateGroups step { name } claimedBy { username }
  instance { id state version currentStep { name } } } }
  pageInfo { hasNextPage endCursor } } } }"""
INBOX_COUNT = INBOX.replace("inbox(first: 20) {", "inbox(first: 20) { totalCount")
PAGE_TARGET = 2.0
CHANGE_TARGET = 1.15


def _spec(assigned: bool) -> dict:
    steps = []
    for step in FIVE_STEPS["steps"]:
        extra = {"assignees": {"groups": ["reviewers"]}} if assigned else {}
        steps.append({**step, **extra})
    transitions = [{**t, "condition": ""} for t in FIVE_STEPS["transitions"]]
    return {"steps": steps, "transitions": transitions}


def populate(total: int, big: int, small: int, chunk: int = 5000) -> dict:
    """``total`` instances (claims attached), each on an assigned step with an open work item:
    ``big`` of them for user "big", ``small`` for "small", the rest spread over 50 others."""
    from decimal import Decimal

    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection
    from django.utils import timezone

    from bench._common import create_workflow
    from claims.models import Claim
    from claims.rules import REVIEWERS
    from django_steps.choices import InstanceState
    from django_steps.models import WorkflowInstance, WorkItem, WorkItemCandidate
    from django_steps.versions import publish_workflow

    workflow = create_workflow("Inbox Bench", _spec(True))
    version = publish_workflow(workflow)
    step = workflow.steps.get(order=1)
    status = step.statuses.get(name="Open")
    reviewers = Group.objects.get_or_create(name=REVIEWERS)[0]
    reviewers.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_steps",
            codename__in=["view_workflowinstance", "change_workflowinstance"],
        )
    )
    names = ["big", "small", *[f"other{i}" for i in range(50)]]
    User.objects.bulk_create([User(username=name, password="!") for name in names])  # no login
    users = {user.username: user for user in User.objects.filter(username__in=names)}
    reviewers.user_set.add(*users.values())
    owners = ["big"] * big + ["small"] * small
    owners += [f"other{i % 50}" for i in range(total - len(owners))]
    random.Random(7).shuffle(owners)  # interleaved, as items arrive over time
    claim_type = ContentType.objects.get_for_model(Claim)
    now = timezone.now()
    for start in range(0, total, chunk):
        part = owners[start : start + chunk]
        claims = Claim.objects.bulk_create(
            [
                Claim(title=f"Claim {start + i}", claimant="C", amount=Decimal(100))
                for i in range(len(part))
            ]
        )
        instances = WorkflowInstance.objects.bulk_create(
            [
                WorkflowInstance(
                    workflow=workflow,
                    definition_version=version,
                    current_step=step,
                    current_step_status=status,
                    state=InstanceState.ACTIVE,
                    version=1,
                    last_sequence=1,
                    content_type=claim_type,
                    object_id=str(claim.pk),
                )
                for claim in claims
            ]
        )
        items = WorkItem.objects.bulk_create(
            [WorkItem(instance=instance, step=step, opened_at=now) for instance in instances]
        )
        WorkItemCandidate.objects.bulk_create(
            [
                WorkItemCandidate(item=item, user=users[name])
                for item, name in zip(items, part, strict=True)
            ]
        )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return users


def _client(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def _time(client, query: str) -> float:
    started = time.perf_counter()
    response = client.post("/graphql/", {"query": query}, content_type="application/json")
    elapsed = time.perf_counter() - started
    body = response.json()
    assert "errors" not in body, body
    return elapsed


def alternate(a, b, rounds: int) -> tuple[float, float]:
    """Medians of ``a()`` and ``b()`` timed in rounds, the order flipping every round."""
    first, second = [], []
    for i in range(rounds):
        if i % 2:
            second.append(b())
            first.append(a())
        else:
            first.append(a())
            second.append(b())
    return statistics.median(first), statistics.median(second)


def status_change_cost(count: int) -> tuple[float, float]:
    """Medians of advancing an instance from step 1 to step 2, with and without assignees."""
    from decimal import Decimal

    from bench._common import create_workflow
    from claims.models import Claim
    from django_steps.services import start_workflow_instance, update_workflow_step_status
    from django_steps.versions import publish_workflow

    for name, assigned in (("Assigned", True), ("Plain", False)):
        publish_workflow(create_workflow(name, _spec(assigned)))
    pairs = []
    for i in range(count):
        claims = [Claim.objects.create(title=f"c{i}", claimant="C", amount=Decimal(5))] * 2
        pairs.append(
            (
                start_workflow_instance("Assigned", claims[0]),
                start_workflow_instance("Plain", claims[1]),
            )
        )

    def advance(instance) -> float:
        started = time.perf_counter()
        update_workflow_step_status(instance, "Done")
        return time.perf_counter() - started

    assigned_times, plain_times = [], []
    for i, (assigned, plain) in enumerate(pairs):  # alternated, the order flipping each time
        if i % 2:
            plain_times.append(advance(plain))
            assigned_times.append(advance(assigned))
        else:
            assigned_times.append(advance(assigned))
            plain_times.append(advance(plain))
    warm = count // 10  # the first changes warm the caches
    return statistics.median(assigned_times[warm:]), statistics.median(plain_times[warm:])


def main() -> None:
    args = bench_arguments(__doc__).parse_args()
    backend = setup_django("demo.settings", "inbox")
    total, big, small = (3_330, 1_000, 10) if args.quick else (333_000, 10_000, 100)
    started = time.perf_counter()
    users = populate(total, big, small)
    setup = time.perf_counter() - started
    big_client, small_client = _client(users["big"]), _client(users["small"])
    for client in (big_client, small_client):
        _time(client, INBOX)  # warm up
    rounds = 10 if args.quick else 30
    large, few = alternate(
        lambda: _time(big_client, INBOX), lambda: _time(small_client, INBOX), rounds
    )
    large_count, few_count = alternate(
        lambda: _time(big_client, INBOX_COUNT), lambda: _time(small_client, INBOX_COUNT), rounds
    )
    assigned, plain = status_change_cost(40 if args.quick else 200)
    label = f"({backend}, {total:,} instances with an open work item, set up in {setup:.0f} s)"
    rows = [
        versus(
            f"me.inbox(first: 20) over GraphQL, {big:,} vs {small:,} open items {label}",
            large,
            few,
            "ms",
            scale=1000,
            target=f"≤ {PAGE_TARGET}×",
            met=large / few <= PAGE_TARGET,
        ),
        versus(
            f"me.inbox(first: 20) with totalCount, {big:,} vs {small:,} open items "
            "(a COUNT of the user's items: no target)",
            large_count,
            few_count,
            "ms",
            scale=1000,
        ),
        versus(
            "status change closing and opening work items vs the same without "
            f"assignees ({backend})",
            assigned,
            plain,
            "ms",
            scale=1000,
            digits=3,
            target=f"≤ {CHANGE_TARGET}×",
            met=assigned / plain <= CHANGE_TARGET,
        ),
    ]
    emit(rows, args.json, "Inbox")


if __name__ == "__main__":
    main()
