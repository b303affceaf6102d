from __future__ import annotations

from decimal import Decimal

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from tests.conftest import CLAIM_PROCESSING, make_workflow
from tests.graphql_api.conftest import make_user

from .helpers import GraphQLSocket


@pytest.fixture(autouse=True)
def _fast_catch_up(settings):
    settings.DJANGO_STEPS_GRAPHQL = {
        **settings.DJANGO_STEPS_GRAPHQL,
        "SUBSCRIPTION_CATCH_UP_SECONDS": 1.0,
        "SUBSCRIPTION_RETRY_SECONDS": 0.2,
    }


@pytest.fixture
def application():
    from graphql_api.live.routing import get_application

    return get_application()


def login_session(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def socket_as(application, user) -> GraphQLSocket:
    """A socket carrying a new session of ``user``, opened by ``async with await socket_as(…)``."""
    return GraphQLSocket(application, session_key=await database_sync_to_async(login_session)(user))


@pytest.fixture
def viewer_session(transactional_db):
    # A reviewer: the test settings are the demo's, where claims are seen by their owner and by
    # reviewers (tests/graphql_api/api/test_roles.py tests the claimants).
    return login_session(
        make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
    )


@pytest.fixture
def claim_workflows(transactional_db):
    """Two workflows of the same shape ("Claim Processing", "Claim Triage")."""
    return make_workflow("Claim Processing", CLAIM_PROCESSING), make_workflow(
        "Claim Triage", CLAIM_PROCESSING
    )


def new_claim(title: str = "Broken window"):
    from claims.models import Claim

    return Claim.objects.create(title=title, claimant="Ada", amount=Decimal("1500.00"))
