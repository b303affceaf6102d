"""The default visibility rule on streams: instances on a model the subscriber may not view (a
workflow on user accounts) reach no claimant's subscription, replayed or live; the account's
own viewer (a superuser) receives them."""

from __future__ import annotations

from io import StringIO

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.core.management import call_command

from claims.models import Claim
from django_steps import services
from django_steps.definitions import import_workflow
from tests.demo.test_every_path import ON_USERS  # the same workflow on user accounts

from .conftest import socket_as
from .helpers import instance_gid

pytestmark = pytest.mark.django_db(transaction=True)

run = database_sync_to_async
User = get_user_model()


@pytest.fixture
def world(transactional_db):
    call_command("demo_setup", "--no-claims", stdout=StringIO())
    import_workflow(ON_USERS)
    users = {name: User.objects.get(username=name) for name in ("demo", "alice")}
    claim = Claim.objects.create(title="hers", claimant="a", amount=100, owner=users["alice"])
    return {
        "users": users,
        "hers": services.start_workflow_instance("Claim Processing", claim),
        "account": services.start_workflow_instance("Account Review", users["demo"]),
    }


async def test_instances_on_user_accounts_reach_no_claimant_replayed_or_live(application, world):
    users, hers, account = world["users"], world["hers"], world["account"]
    async with (
        await socket_as(application, users["alice"]) as alice,
        await socket_as(application, users["demo"]) as root,
    ):
        mine = await alice.subscribe(after="0")  # replay from the start, then live
        everything = await root.subscribe(after="0")
        replayed = await alice.events(mine, 1)
        assert [e["instance"]["id"] for e in replayed] == [instance_gid(hers)]
        assert await alice.nothing_more(mine, 0.5)
        await run(services.update_workflow_step_status)(account, "Flagged")
        await run(services.set_workflow_on_hold)(hers)
        live = await alice.events(mine, 1)
        assert [e["instance"]["id"] for e in live] == [instance_gid(hers)]
        assert await alice.nothing_more(mine, 0.5)
        seen = await root.events(everything, 4)  # both starts, the flag, the hold
        assert {e["instance"]["id"] for e in seen} == {instance_gid(hers), instance_gid(account)}
