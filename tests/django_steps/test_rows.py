"""django_steps.rows: the change path's shortcuts give what Django's own path gives."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.db.models.signals import post_init

from django_steps import rows
from django_steps.choices import EventKind, InstanceState
from django_steps.models import WorkflowEvent, WorkflowInstance
from django_steps.services import start_workflow_instance, update_workflow_step_status
from django_steps.signals import workflow_event_committed
from tests.conftest import make_workflow
from tests.django_steps.test_services import routing
from tests.testapp.models import Document

pytestmark = pytest.mark.django_db


@pytest.fixture
def instance(db):
    make_workflow("Routing", routing([("Fast", "", 0)]))
    instance = start_workflow_instance("Routing", Document.objects.create(title="t", amount=5))
    return update_workflow_step_status(instance, "Done")


def django_parameters(fields, obj, add):
    return {f.column: f.get_db_prep_save(f.pre_save(obj, add=add), connection) for f in fields}


def shortcut_parameters(fields, obj, add):
    params = {}
    rows.parameters(params, "", fields, obj, add, connection)
    return params


def sent(value):
    """What the database receives for ``value``: psycopg's literal on PostgreSQL (a text
    choice goes as its text either way); SQLite binds any ``str`` as its text."""
    if connection.vendor != "postgresql":
        return str.__str__(value) if isinstance(value, str) else value
    from psycopg.adapt import Transformer

    connection.ensure_connection()
    return Transformer(connection.connection).as_literal(value)


def same(a, b):
    if isinstance(a, str) and isinstance(b, str):  # a text choice goes as its text
        return sent(a) == sent(b)
    return type(a) is type(b) and (a == b or str(a) == str(b))  # adapters compare by value


def test_parameters_are_what_saving_would_send(instance):
    event = instance.events.order_by("-sequence").first()
    event.detail = {"reason": "x"}
    event.actor_id = None
    event.kind = EventKind.ADVANCED  # a str subclass: sent as its text
    event.from_state = "ACTIVE"
    for obj, add in ((event, True), (instance, False)):
        fields = [  # auto_now(_add): the time of each call (see the next test)
            f
            for f in type(obj)._meta.concrete_fields
            if not getattr(f, "auto_now", False) and not getattr(f, "auto_now_add", False)
        ]
        expected = django_parameters(fields, obj, add)
        got = shortcut_parameters(fields, obj, add)
        assert expected.keys() == got.keys()
        for column in expected:
            assert same(got[column], expected[column]), column


def test_a_text_choice_is_sent_as_its_text(instance):
    event = instance.events.order_by("-sequence").first()
    event.kind, event.state = EventKind.ADVANCED, InstanceState.ACTIVE  # as a change sets them
    event.from_state = InstanceState.ACTIVE
    fields = [WorkflowEvent._meta.get_field(name) for name in ("kind", "state", "from_state")]
    got = shortcut_parameters(fields, event, True)
    assert [type(got[f.column]) for f in fields] == [str, str, str]
    assert got == {"kind": "ADVANCED", "state": "ACTIVE", "from_state": "ACTIVE"}
    assert all(sent(got[f.column]) == sent(getattr(event, f.attname)) for f in fields)


def test_a_field_with_its_own_pre_save_keeps_it(instance):
    field = WorkflowInstance._meta.get_field("updated_at")
    before = instance.updated_at
    got = shortcut_parameters([field], instance, False)
    assert instance.updated_at > before  # auto_now ran
    assert got["updated_at"] == connection.ops.adapt_datetimefield_value(instance.updated_at)


def test_a_creation_time_is_set_when_added_and_kept_after(instance):
    field = WorkflowEvent._meta.get_field("created_at")  # auto_now_add
    event = instance.events.order_by("-sequence").first()
    written = event.created_at
    kept = shortcut_parameters([field], event, False)
    assert event.created_at == written
    assert kept == django_parameters([field], event, False)
    added = shortcut_parameters([field], event, True)
    assert event.created_at > written  # set now, on the object, as pre_save sets it
    assert added["created_at"] == connection.ops.adapt_datetimefield_value(event.created_at)


def test_a_row_builds_the_model_from_db_would(instance):
    names = [f.attname for f in WorkflowInstance._meta.concrete_fields]
    values = [getattr(instance, name) for name in names]
    built = rows.from_row(WorkflowInstance, "default", names, values)
    expected = WorkflowInstance.from_db("default", names, values)
    assert built.__dict__.keys() - {"_state"} == expected.__dict__.keys() - {"_state"}
    assert all(built.__dict__[n] == expected.__dict__[n] for n in names)
    assert (built._state.adding, built._state.db) == (False, "default")
    assert built.workflow.pk == instance.workflow_id  # relations load as usual


def test_deferred_fields_stay_deferred(instance):
    names = [f.attname for f in WorkflowInstance._meta.concrete_fields if f.name != "state"]
    built = rows.from_row(WorkflowInstance, "default", names, [getattr(instance, n) for n in names])
    assert built.get_deferred_fields() == {"state"}
    assert built.state == instance.state  # read when asked, as from_db's would be


@pytest.mark.parametrize(
    "model, attribute, expected",
    [
        (WorkflowInstance, "pk", lambda instance: instance.pk),  # read for a change
        (WorkflowEvent, "kind", lambda instance: EventKind.STATUS_CHANGED),  # written
    ],
    ids=["instance read", "event written"],
)
def test_init_listeners_still_hear_every_row_built_without_the_constructor(
    instance, model, attribute, expected
):
    heard = []

    def listen(sender, instance, **kwargs):
        heard.append(getattr(instance, attribute))

    post_init.connect(listen, sender=model)
    try:
        update_workflow_step_status(instance, "Waiting")
    finally:
        post_init.disconnect(listen, sender=model)
    assert expected(instance) in heard
    assert WorkflowEvent.objects.filter(instance=instance).count() == 3


def test_a_new_event_is_what_its_constructor_builds(instance):
    values = {
        "workflow_id": instance.workflow_id,
        "definition_version_id": instance.definition_version_id,
        "sequence": 9,
        "version": 9,
        "kind": EventKind.STATUS_CHANGED,
        "state": instance.state,
        "to_step_id": instance.current_step_id,
        "to_status_id": instance.current_step_status_id,
        "context": {"input": {"a": 1}},
    }
    related = {"instance": instance, "actor": None}
    built = rows.new(WorkflowEvent, related, values)
    expected = WorkflowEvent(**related, **values)
    assert built.__dict__.keys() == expected.__dict__.keys()
    names = [f.attname for f in WorkflowEvent._meta.concrete_fields]
    assert all(built.__dict__[n] == expected.__dict__[n] for n in names)
    assert (built._state.adding, built._state.db) == (True, expected._state.db)
    assert built._state.fields_cache == expected._state.fields_cache  # no query for either
    assert built.instance is instance and built.actor is None


def test_the_change_reads_every_time_as_django_reads_it(db, django_capture_on_commit_callbacks):
    """The instance a change reads (its workflow, version and object with it) is the one
    ``workflow_event_committed`` receivers get: its times are the ORM's, zone and all."""
    make_workflow(
        "Routing",
        routing(
            [
                ("Fast", 'document.submitted_at < timestamp("2031-01-01T00:00:00Z")', 10),
                ("Slow", "", 0),
            ]
        ),
    )
    submitted = dt.datetime(2030, 3, 4, 5, 6, 7, 891011, tzinfo=dt.UTC)
    doc = Document.objects.create(title="t", submitted_at=submitted)
    received = []

    def receiver(sender, event, instance, **kwargs):
        received.append(instance)

    workflow_event_committed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            changed = update_workflow_step_status(start_workflow_instance("Routing", doc), "Done")
    finally:
        workflow_event_committed.disconnect(receiver)
    assert changed.current_step.name == "Fast"
    read = received[-1]
    orm = WorkflowInstance.objects.select_related("workflow", "definition_version").get(pk=read.pk)
    pairs = [
        (read.started_at, orm.started_at),
        (read.workflow.created_at, orm.workflow.created_at),
        (read.workflow.updated_at, orm.workflow.updated_at),
        (read.definition_version.created_at, orm.definition_version.created_at),
        (read.content_object.submitted_at, submitted),
    ]
    for got, expected in pairs:
        assert (got, got.tzinfo, got.utcoffset()) == (expected, expected.tzinfo, dt.timedelta(0))
