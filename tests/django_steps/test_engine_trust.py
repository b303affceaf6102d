"""What the engine trusts, through its public surface (the services, ``load_workflow``):

- no secrets in what conditions read or history stores;
- a decision sticks: leaving a status that names a permission needs it, or a target status
  whose own permission the user holds; the system (no actor) is exempt;
- ``actor=`` applies the whole rule: the change permission, visibility, the status permission;
- in conditions a nullable foreign key is ``null`` or its primary key, and ``!= null`` works.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from claims.models import Claim
from django_steps import authorization, compiled, services
from django_steps.exceptions import WorkflowError
from django_steps.models import WorkflowEvent, WorkflowInstance
from tests.conftest import CLAIM_PROCESSING, fork, make_workflow
from tests.django_steps.test_authorization import GUARDED
from tests.graphql_api.conftest import client_for, make_user

pytestmark = pytest.mark.django_db

User = get_user_model()

CHANGE = ("django_steps.view_workflowinstance", "django_steps.change_workflowinstance")


def two_steps(condition: str, content_types=("claims.claim",), name: str = "Guarded") -> None:
    """A → Yes when ``condition`` holds, else A → No."""
    make_workflow(name, fork("A", "Yes", "No", condition, content_types=list(content_types)))


def code_of(call) -> str | None:
    try:
        call()
    except WorkflowError as error:
        return error.code
    return None


# --------------------------------------------------------------------------- 6. no secrets


@pytest.mark.django_db(transaction=True)  # workflowEvents reads committed events (PostgreSQL)
def test_a_workflow_on_users_reads_and_stores_no_password_hash():
    two_steps("user.is_staff == false && is_active", content_types=["auth.user"])
    member = User.objects.create_user("member", password="correct horse battery staple")
    instance = services.start_workflow_instance("Guarded", member)
    services.update_workflow_step_status(instance, "Done")
    assert instance.current_step.name == "Yes"
    stored = WorkflowEvent.objects.get(pk=instance.last_event.pk).context
    assert stored["object"]["username"] == "member"
    assert "password" not in stored["object"]
    assert member.password not in json.dumps(stored)

    # Nor through the API, to a reader who may view the user.
    reader = make_user("reader", "django_steps.view_workflowinstance", "auth.view_user")
    feed = client_for(reader).data(
        "query { workflowEvents(first: 10) { edges { node { kind context } } } }"
    )["workflowEvents"]["edges"]
    assert [e["node"]["kind"] for e in feed] == ["STARTED", "ADVANCED"]
    assert feed[1]["node"]["context"]["object"]["username"] == "member"
    assert member.password not in json.dumps(feed)

    # A condition cannot read it either: to a condition there is no such field.
    two_steps("user.password != ''", content_types=["auth.user"], name="Peek")
    peek = services.start_workflow_instance("Peek", member)
    with pytest.raises(WorkflowError) as refused:
        services.update_workflow_step_status(peek, "Done")
    assert refused.value.code == "CONDITION_ERROR" and refused.value.details["reason"] == (
        "NO_SUCH_KEY"
    )


def test_fields_named_like_secrets_are_left_out_unless_a_model_includes_them(db, settings):
    two_steps("has(claim.title) || true")
    base = dict(settings.DJANGO_STEPS)

    def stored(**steps_settings) -> dict:
        settings.DJANGO_STEPS = {**base, **steps_settings}
        claim = Claim.objects.create(title="Window", claimant="Ada", amount=Decimal("7"))
        instance = services.start_workflow_instance("Guarded", claim)
        services.update_workflow_step_status(instance, "Done")
        return WorkflowEvent.objects.get(pk=instance.last_event.pk).context["object"]

    everything = stored()
    assert {"title", "claimant", "amount", "owner"} <= set(everything)
    # a name pattern of CONTEXT_SECRET_FIELDS leaves "claimant" out of every model...
    assert "claimant" not in stored(CONTEXT_SECRET_FIELDS=["*claim*"])
    # ... unless the model's allow-list names it
    assert set(
        stored(
            CONTEXT_SECRET_FIELDS=["*claim*"],
            CONTEXT_FIELDS={"claims.claim": {"include": ["claimant", "amount"]}},
        )
    ) == {"claimant", "amount"}
    # a deny-list per model
    denied = stored(CONTEXT_FIELDS={"claims.claim": {"exclude": ["title", "amount"]}})
    assert "title" not in denied and "amount" not in denied and "claimant" in denied


def test_a_field_left_out_is_not_read_by_conditions_either(db, settings):
    settings.DJANGO_STEPS = {
        **settings.DJANGO_STEPS,
        "CONTEXT_FIELDS": {"claims.claim": {"exclude": ["amount"]}},
    }
    two_steps("claim.amount > 1")
    claim = Claim.objects.create(title="Window", claimant="Ada", amount=Decimal("7"))
    instance = services.start_workflow_instance("Guarded", claim)
    assert code_of(lambda: services.update_workflow_step_status(instance, "Done")) == (
        "CONDITION_ERROR"
    )
    dry = services.evaluate_transitions(instance)
    assert dry.error and dry.fired is None  # the dry run reads the same


def test_a_malformed_context_fields_setting_is_a_configuration_error(db, settings):
    from django.core.exceptions import ImproperlyConfigured

    two_steps("claim.amount > 1")
    claim = Claim.objects.create(title="Window", claimant="Ada", amount=Decimal("7"))
    instance = services.start_workflow_instance("Guarded", claim)
    for bad in (
        {"claims.claim": {"only": ["amount"]}},
        {"claims.claim": {"include": "amount"}},
        {"claims.claim": {"exclude": 3}},
        {"claims.claim": ["amount"]},
        ["claims.claim"],
    ):
        settings.DJANGO_STEPS = {**settings.DJANGO_STEPS, "CONTEXT_FIELDS": bad}
        with pytest.raises(ImproperlyConfigured, match="CONTEXT_FIELDS"):
            services.update_workflow_step_status(instance, "Done")


# --------------------------------------------------------------------------- 7. decisions stick

#: Claim Processing with test_authorization's guarded first step plus a reviewer's decision, and
#: a step without on-hold or cancellation status.
STICKY = {
    **CLAIM_PROCESSING,
    "steps": [
        {
            **GUARDED["steps"][0],
            "statuses": [
                GUARDED["steps"][0]["statuses"][0],
                {"name": "Needs Documents", "permission": "claims.decide_claim"},
                *GUARDED["steps"][0]["statuses"][1:],
            ],
        },
        {
            "name": "Review Claim",
            "statuses": [
                {"name": "Under Review", "is_default_status": True},
                {"name": "Escalated", "permission": "claims.decide_claim"},
                {
                    "name": "Approved",
                    "is_completion_status": True,
                    "permission": "claims.decide_claim",
                },
            ],
        },
        CLAIM_PROCESSING["steps"][2],
    ],
}


@pytest.fixture
def people(db):
    owner = make_user("owner", *CHANGE)
    reviewer = make_user("reviewer", *CHANGE, groups=("reviewers",))
    return owner, reviewer


@pytest.fixture
def sticky(people):
    make_workflow("Sticky", STICKY)
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("1"), owner=people[0])
    return services.start_workflow_instance("Sticky", claim)


def test_a_status_without_permission_cannot_undo_one_with_a_permission(sticky, people):
    owner, reviewer = people
    services.update_workflow_step_status(sticky, "Needs Documents", actor=reviewer)
    version = sticky.version
    for change in (
        lambda: services.update_workflow_step_status(sticky, "Draft", actor=owner),
        lambda: services.set_workflow_on_hold(sticky, actor=owner),  # "On Hold": decide_claim
    ):
        assert code_of(change) == "PERMISSION_DENIED"
    fresh = WorkflowInstance.objects.get(pk=sticky.pk)
    assert (fresh.current_step_status.name, fresh.version) == ("Needs Documents", version)
    # A target whose own permission she holds: submitting, or withdrawing, is still hers.
    assert services.update_workflow_step_status(sticky, "Submitted", actor=owner).current_step.name
    assert sticky.current_step.name == "Review Claim"


def test_the_refusal_names_the_status_that_sticks_never_a_value(sticky, people):
    owner, reviewer = people
    services.update_workflow_step_status(sticky, "Needs Documents", actor=reviewer)
    with pytest.raises(WorkflowError) as refused:
        services.update_workflow_step_status(sticky, "Draft", actor=owner)
    assert refused.value.code == "PERMISSION_DENIED"
    assert '"Needs Documents"' in refused.value.message
    assert refused.value.details["current_status_name"] == "Needs Documents"


def test_hold_and_cancel_on_a_step_without_their_statuses_keep_the_decision(sticky, people):
    owner, reviewer = people
    services.update_workflow_step_status(sticky, "Submitted", actor=owner)  # → Review Claim
    services.update_workflow_step_status(sticky, "Escalated", actor=reviewer)
    # "Review Claim" has no on-hold or cancellation status: holding or cancelling keeps
    # "Escalated", so it needs the permission "Escalated" names.
    for change in (services.set_workflow_on_hold, services.cancel_workflow_instance):
        assert code_of(lambda c=change: c(sticky, actor=owner)) == "PERMISSION_DENIED"
    services.set_workflow_on_hold(sticky, actor=reviewer)
    assert code_of(lambda: services.resume_workflow_instance(sticky, actor=owner)) == (
        "PERMISSION_DENIED"
    )
    assert services.resume_workflow_instance(sticky, actor=reviewer).state == "ACTIVE"
    # Without an actor (the system: a deadline, a migration) nothing is checked.
    assert services.cancel_workflow_instance(sticky).state == "CANCELLED"
    assert sticky.last_event.actor is None


def test_allowed_actions_match_the_services_in_python_too(sticky, people):
    owner, reviewer = people
    services.update_workflow_step_status(sticky, "Needs Documents", actor=reviewer)
    definition = compiled.load(sticky.workflow)
    fresh = WorkflowInstance.objects.get(pk=sticky.pk)
    hers = authorization.allowed_actions(owner, fresh, definition)
    assert [s.name for s in hers.statuses] == ["Submitted", "Withdrawn"]
    assert (hers.hold, hers.resume, hers.cancel, hers.advance) == (False, False, True, False)
    # A user who may not see the instance may do nothing with it: the services say NOT_FOUND.
    stranger = make_user("stranger", *CHANGE)
    assert authorization.allowed_actions(stranger, fresh, definition).statuses == ()
    assert code_of(lambda: services.cancel_workflow_instance(fresh, actor=stranger)) == (
        "INSTANCE_NOT_FOUND"
    )


# ------------------------------------------------------------------- 12. actor= is the whole rule


def test_a_host_calling_the_services_with_an_actor_cannot_bypass_the_rule(sticky, people):
    owner, _reviewer = people
    nobody = make_user("nobody")  # no permission at all
    viewer = make_user("viewer", "django_steps.view_workflowinstance", groups=("reviewers",))
    stranger = make_user("stranger", *CHANGE)  # may change instances, but not see this one
    calls = {
        "update": lambda u: services.update_workflow_step_status(sticky, "Withdrawn", actor=u),
        "advance": lambda u: services.advance_workflow_instance(sticky, actor=u),
        "hold": lambda u: services.set_workflow_on_hold(sticky, actor=u),
        "resume": lambda u: services.resume_workflow_instance(sticky, actor=u),
        "cancel": lambda u: services.cancel_workflow_instance(sticky, actor=u),
        "stale": lambda u: services.cancel_workflow_instance(sticky, actor=u, expected_version=9),
    }
    for name, call in calls.items():
        assert code_of(lambda: call(nobody)) == "PERMISSION_DENIED", name
        assert code_of(lambda: call(viewer)) == "PERMISSION_DENIED", name  # sees, may not change
        assert code_of(lambda: call(stranger)) == "INSTANCE_NOT_FOUND", name
    assert WorkflowEvent.objects.filter(instance=sticky).count() == 1
    # The owner passes all three parts.
    assert services.cancel_workflow_instance(sticky, actor=owner).state == "CANCELLED"


def test_a_hidden_instance_is_refused_exactly_like_a_missing_one(sticky):
    stranger = make_user("stranger", *CHANGE)
    with pytest.raises(WorkflowError) as hidden:
        services.set_workflow_on_hold(sticky, actor=stranger)
    pk = sticky.pk
    WorkflowInstance.objects.filter(pk=pk).delete()
    with pytest.raises(WorkflowError) as missing:
        services.set_workflow_on_hold(sticky, actor=stranger)
    assert (type(hidden.value), hidden.value.code, hidden.value.message, hidden.value.details) == (
        type(missing.value),
        missing.value.code,
        missing.value.message,
        missing.value.details,
    )


def test_reads_and_starts_with_an_actor_apply_the_rule_too(people):
    owner, reviewer = people
    make_workflow("Sticky", STICKY)
    hers = Claim.objects.create(title="t", claimant="c", amount=Decimal("1"), owner=owner)
    theirs = Claim.objects.create(title="u", claimant="c", amount=Decimal("1"))
    # Starting: the change permission, then the object must be one the actor may view.
    assert code_of(
        lambda: services.start_workflow_instance("Sticky", hers, actor=make_user("nobody"))
    ) == ("PERMISSION_DENIED")
    assert code_of(lambda: services.start_workflow_instance("Sticky", theirs, actor=owner)) == (
        "OBJECT_NOT_FOUND"
    )
    assert not WorkflowInstance.objects.filter(object_id=str(theirs.pk)).exists()
    instance = services.start_workflow_instance("Sticky", hers, actor=owner)
    other = services.start_workflow_instance("Sticky", theirs, actor=reviewer)
    # The dry run and the lookup by object: only what the actor may see.
    assert services.evaluate_transitions(instance, actor=owner).instance.pk == instance.pk
    assert code_of(lambda: services.evaluate_transitions(other, actor=owner)) == (
        "INSTANCE_NOT_FOUND"
    )
    assert services.get_workflow_instance_for_object(theirs, actor=owner) is None
    assert services.get_workflow_instance_for_object(theirs, actor=reviewer) == other
    assert services.get_workflow_instance_for_object(theirs) == other  # trusted code


# --------------------------------------------------------------------------- CEL: nullable keys


@pytest.mark.parametrize(
    "condition, routed_without_owner, routed_with_owner",
    [
        ("claim.owner != null", "No", "Yes"),
        ("claim.owner == null", "Yes", "No"),
        ("null != owner", "No", "Yes"),
        ("claim.owner == OWNER_PK", "No", "Yes"),
        ("claim.owner != null && claim.owner > 0", "No", "Yes"),
        ("has(claim.owner) && claim.owner == null", "Yes", "No"),
    ],
)
def test_a_nullable_foreign_key_reads_null_or_its_primary_key(
    db, condition, routed_without_owner, routed_with_owner
):
    owner = User.objects.create_user("someone")
    two_steps(condition.replace("OWNER_PK", str(owner.pk)))
    for owned_by, expected in ((None, routed_without_owner), (owner, routed_with_owner)):
        claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("1"), owner=owned_by)
        instance = services.start_workflow_instance("Guarded", claim)
        assert services.evaluate_transitions(instance).fired.transition.to_step.name == expected
        services.update_workflow_step_status(instance, "Done")
        assert instance.current_step.name == expected, (condition, owned_by)
        assert instance.last_event.context["object"]["owner"] == (owned_by and owned_by.pk)


def test_a_global_permission_lets_its_holder_leave_a_status_on_every_object(db):
    """ModelBackend's stored permissions are global (never per object): they count as held."""
    make_workflow("Sticky", STICKY)
    claim_type = Permission.objects.get(codename="view_claim").content_type
    decide, _ = Permission.objects.get_or_create(
        codename="decide_claim", content_type=claim_type, defaults={"name": "Can decide claims"}
    )
    clerk = make_user("clerk", *CHANGE, "claims.view_claim")  # sees every claim, not a reviewer
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("1"))
    instance = services.start_workflow_instance("Sticky", claim)
    services.update_workflow_step_status(instance, "Needs Documents")  # the system decides
    assert code_of(
        lambda: services.update_workflow_step_status(instance, "Draft", actor=clerk)
    ) == ("PERMISSION_DENIED")
    clerk.user_permissions.add(decide)
    clerk = User.objects.get(pk=clerk.pk)  # permissions are cached per user object
    assert services.update_workflow_step_status(instance, "Draft", actor=clerk).version == 3
