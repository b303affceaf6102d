"""django_steps.authorization through the Python services: attachable models, status permissions
(global and object-level), and the visibility rule's setting."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType

from claims.models import Claim
from django_steps import authorization, services
from django_steps.exceptions import ModelNotAllowed, NotPermitted
from django_steps.models import WorkflowEvent, WorkflowInstance
from tests.conftest import CLAIM_PROCESSING, make_workflow
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db

User = get_user_model()

GUARDED = {
    **CLAIM_PROCESSING,
    "steps": [
        {
            **CLAIM_PROCESSING["steps"][0],
            "statuses": [
                {"name": "Draft", "is_default_status": True},
                {
                    "name": "Submitted",
                    "is_completion_status": True,
                    "permission": "claims.submit_claim",
                },
                {"name": "On Hold", "is_on_hold_status": True, "permission": "claims.decide_claim"},
                {
                    "name": "Withdrawn",
                    "is_cancellation_status": True,
                    "permission": "claims.submit_claim",
                },
            ],
        },
        *CLAIM_PROCESSING["steps"][1:],
    ],
}


@pytest.fixture
def owner(db):
    return User.objects.create_user("owner", password="pw")


@pytest.fixture
def instance(owner):
    make_workflow("Guarded", GUARDED)
    claim = Claim.objects.create(title="t", claimant="c", amount=Decimal("1"), owner=owner)
    return services.start_workflow_instance("Guarded", claim)


def may_change(user, *, reviewer: bool = False):
    """``user`` may read and change instances (a reviewer also sees every claim): what an acting
    user needs before a status's own permission is asked."""
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=("view_workflowinstance", "change_workflowinstance")
        )
    )
    if reviewer:
        user.groups.add(Group.objects.get_or_create(name="reviewers")[0])
    return User.objects.get(pk=user.pk)  # permissions are cached per user object


def test_a_workflow_starts_only_on_the_models_it_lists(db):
    make_workflow("Claims only", CLAIM_PROCESSING)
    with pytest.raises(ModelNotAllowed) as refused:
        services.start_workflow_instance("Claims only", Document.objects.create())
    assert refused.value.code == "MODEL_NOT_ALLOWED"
    assert not WorkflowInstance.objects.exists()
    make_workflow("Nothing", {**CLAIM_PROCESSING, "content_types": []})
    with pytest.raises(ModelNotAllowed):
        services.start_workflow_instance(
            "Nothing", Claim.objects.create(title="t", claimant="c", amount=1)
        )


def test_a_status_permission_is_checked_for_the_acting_user_and_refusals_change_nothing(
    instance, owner
):
    # a reviewer sees the claim, but claims.submit_claim is its owner's
    stranger = may_change(User.objects.create_user("stranger", password="pw"), reviewer=True)
    owner = may_change(owner)
    for change in (
        lambda: services.update_workflow_step_status(instance, "Submitted", actor=stranger),
        lambda: services.cancel_workflow_instance(instance, actor=stranger),  # through "Withdrawn"
        lambda: services.set_workflow_on_hold(
            instance, actor=owner
        ),  # "On Hold" needs decide_claim
    ):
        with pytest.raises(NotPermitted) as refused:
            change()
        assert refused.value.code == "PERMISSION_DENIED"
    assert WorkflowInstance.objects.get(pk=instance.pk).version == 1
    assert WorkflowEvent.objects.filter(instance=instance).count() == 1
    # The owner may (django-rules, per object); without an actor nothing is checked (the system).
    assert (
        services.update_workflow_step_status(instance, "Submitted", actor=owner).current_step.name
        == "Review Claim"
    )


def test_a_global_permission_allows_a_status_on_every_object(instance):
    """ModelBackend answers stored permissions globally (never per object): still honoured."""
    clerk = User.objects.create_user("clerk", password="pw")
    clerk.user_permissions.add(
        Permission.objects.create(
            codename="submit_claim",
            name="Can submit any claim",
            content_type=ContentType.objects.get_for_model(Claim),
        )
    )
    clerk = may_change(clerk, reviewer=True)  # reviewers see every claim
    assert (
        services.update_workflow_step_status(instance, "Submitted", actor=clerk).current_step.name
        == "Review Claim"
    )


def test_an_inactive_user_may_set_no_guarded_status(instance, owner):
    owner.is_active = False
    owner.save()
    with pytest.raises(NotPermitted):
        services.update_workflow_step_status(instance, "Submitted", actor=owner)


# --------------------------------------------------------------------------- visibility


USER_WORKFLOW = {**CLAIM_PROCESSING, "content_types": ["auth.user"]}
DOCUMENT_WORKFLOW = {**CLAIM_PROCESSING, "content_types": ["testapp.document"]}


def reader(username: str, *codenames: str, superuser: bool = False):
    """A user who may read instances, with these extra model permissions (codenames)."""
    user = User.objects.create_user(username, password="pw", is_superuser=superuser)
    user.user_permissions.add(
        *Permission.objects.filter(codename__in=("view_workflowinstance", *codenames))
    )
    return User.objects.get(pk=user.pk)  # permissions are cached per user object


@pytest.fixture
def spread(instance, owner):
    """One instance on each kind of object: the owner's claim (``instance``), another user's
    claim, a user account (a workflow on users) and a document."""
    make_workflow("On users", USER_WORKFLOW)
    make_workflow("On documents", DOCUMENT_WORKFLOW)
    boss = User.objects.create_superuser("boss", password="pw")
    other = Claim.objects.create(title="o", claimant="c", amount=Decimal("1"), owner=boss)
    return {
        "own claim": instance,
        "other claim": services.start_workflow_instance("Guarded", other),
        "user": services.start_workflow_instance("On users", boss),
        "document": services.start_workflow_instance(
            "On documents", Document.objects.create(title="d")
        ),
    }


def seen(user, spread) -> set[str]:
    """What ``user`` sees of ``spread``, asked every way the rule can be asked; they agree."""
    names = {pk: name for name, pk in ((n, i.pk) for n, i in spread.items())}
    listed = {
        names[i.pk] for i in authorization.visible_instances(user, WorkflowInstance.objects.all())
    }
    events = {
        names[e.instance_id]
        for e in authorization.visible_events(user, WorkflowEvent.objects.all())
    }
    one_by_one = {n for n, i in spread.items() if authorization.may_see_instance(user, i)}
    assert listed == events == one_by_one
    return listed


def test_by_default_an_instance_is_seen_by_who_may_view_its_object(settings, spread, owner):
    settings.DJANGO_STEPS = {}  # no object rule: claims need the global permission too
    assert seen(reader("plain"), spread) == set()
    assert seen(reader("documents", "view_document"), spread) == {"document"}
    assert seen(reader("staff", "view_user", "view_claim"), spread) == {
        "own claim",
        "other claim",
        "user",
    }
    assert seen(reader("root", superuser=True), spread) == set(spread)
    # Without view_workflowinstance nothing, whatever else the user may view; inactive: nothing.
    assert seen(reader("viewer", "view_user", "view_claim", "view_document"), spread)
    owner.user_permissions.add(*Permission.objects.filter(codename__in=("view_claim", "view_user")))
    assert seen(User.objects.get(pk=owner.pk), spread) == set()
    assert (
        seen(User.objects.create_superuser("gone", password="pw", is_active=False), spread) == set()
    )


def test_an_object_rule_shows_the_instances_of_the_objects_it_keeps(spread, owner):
    # The demo's settings: claims.claim has an object rule (its owner), reviewers hold
    # claims.view_claim for every claim through django-rules.
    claimant = may_change(owner)
    assert seen(claimant, spread) == {"own claim"}  # not the superuser's claim, not users
    assert seen(may_change(reader("nobody")), spread) == set()  # owns no claim, no reviewer
    reviewer = may_change(User.objects.create_user("reviewer", password="pw"), reviewer=True)
    assert seen(reviewer, spread) == {"own claim", "other claim"}
    # The stored context follows the same rule.
    assert authorization.may_view_object(claimant, spread["own claim"].content_object)
    assert not authorization.may_view_object(claimant, spread["other claim"].content_object)
    assert not authorization.may_view_object(claimant, spread["user"].content_object)
    assert authorization.may_view_object(reviewer, spread["other claim"].content_object)


def test_an_object_rule_naming_no_model_is_a_configuration_error(settings, spread, owner):
    from django.core.exceptions import ImproperlyConfigured

    settings.DJANGO_STEPS = {"VISIBLE_OBJECTS": {"claims.nothing": lambda u, q: q}}
    with pytest.raises(ImproperlyConfigured):
        authorization.visible_instances(may_change(owner), WorkflowInstance.objects.all())


def test_the_visibility_rule_is_a_setting_read_at_call_time(settings, instance, owner):
    reader = User.objects.create_user("reader", password="pw")
    reader.user_permissions.add(Permission.objects.get(codename="view_workflowinstance"))
    reader = User.objects.get(pk=reader.pk)
    everything = WorkflowInstance.objects.all()
    # The demo's rule (the test settings): claims of others are hidden.
    assert list(authorization.visible_instances(reader, everything)) == []
    assert list(authorization.visible_instances(owner, everything)) == []  # no view permission
    # A rule of one's own replaces the default: a callable works as well as a dotted path.
    settings.DJANGO_STEPS = {"VISIBLE_INSTANCES": lambda user, queryset: queryset}
    assert list(authorization.visible_instances(reader, everything)) == [instance]
    assert authorization.may_see_instance(reader, instance)
    settings.DJANGO_STEPS = {
        "VISIBLE_INSTANCES": lambda user, queryset: queryset.filter(state="ON_HOLD")
    }
    assert list(authorization.visible_instances(reader, everything)) == []
    assert list(authorization.visible_events(reader, WorkflowEvent.objects.all())) == []
    assert not authorization.may_see_instance(reader, instance)


def test_users_of_one_visibility_class_see_the_same_instances(settings, spread, owner):
    def classes(users: dict) -> dict:
        return {name: authorization.visibility_class(user) for name, user in users.items()}

    # The demo's settings: reviewers hold claims.view_claim everywhere; a claimant's claims are
    # kept by the object rule, per user: opaque.
    users = {
        "reviewer": may_change(reader("reviewer"), reviewer=True),
        "colleague": may_change(reader("colleague"), reviewer=True),
        "claimant": may_change(owner),
        "root": reader("root", superuser=True),
        "nobody": User.objects.create_user("nobody", password="pw"),
    }
    found = classes(users)
    assert found["reviewer"] == found["colleague"] is not None
    assert found["claimant"] is None and found["nobody"] is None  # opaque; may read nothing
    assert len({found["reviewer"], found["root"]}) == 2
    assert seen(users["reviewer"], spread) == seen(users["colleague"], spread)
    # Without object rules: one class per set of models viewed, whoever holds it.
    settings.DJANGO_STEPS = {}
    users = {
        "staff": reader("staff", "view_user", "view_claim"),
        "clerk": reader("clerk", "view_claim", "view_user"),
        "archivist": reader("archivist", "view_document"),
        "plain": reader("plain"),
    }
    found = classes(users)
    assert found["staff"] == found["clerk"] != found["archivist"] != found["plain"]
    assert seen(users["staff"], spread) == seen(users["clerk"], spread)
    # A rule of one's own is opaque, unless VISIBILITY_CLASS names its classes.
    settings.DJANGO_STEPS = {"VISIBLE_INSTANCES": lambda user, queryset: queryset}
    assert classes(users)["staff"] is None
    settings.DJANGO_STEPS = {
        "VISIBLE_INSTANCES": lambda user, queryset: queryset,
        "VISIBILITY_CLASS": lambda user: "everyone",
    }
    assert classes(users)["staff"] == classes(users)["plain"] is not None
