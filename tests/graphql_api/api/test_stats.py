"""``workflowStats`` through the endpoint: the figures the history implies, for what the viewer
may see, within bounds.

The fixture plays a few days of "Claim Processing" at known times (time_machine), and the
expected figures below are worked out by hand from that story, not by the code under test.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from claims.models import Claim
from django_steps import services
from tests.graphql_api.conftest import VIEW, client_for, gid, make_user

pytestmark = pytest.mark.django_db

UTC = dt.UTC
DAY0 = dt.datetime(2026, 3, 10, tzinfo=UTC)
HOUR = dt.timedelta(hours=1)

STATS = """query Stats($workflow: StatsWorkflow!, $since: DateTime, $until: DateTime,
  $bucket: StatsBucket! = DAY) {
  workflowStats(workflow: $workflow, since: $since, until: $until, bucket: $bucket) {
    workflow { name }
    since until bucket buckets
    throughput { start started completed cancelled }
    instancesOnStep { step { name } counts }
    instancesOnStatus { status { name step { name } } counts }
    timeOnStep { step { name } visits p50Seconds p90Seconds }
  }
}"""

WINDOW = {
    "workflow": {"name": "Claim Processing"},
    "since": DAY0.isoformat(),
    "until": (DAY0 + dt.timedelta(days=3)).isoformat(),
}


def at(day: int, hour: int) -> dt.datetime:
    return DAY0 + dt.timedelta(days=day, hours=hour)


@pytest.fixture
def story(claim_workflow):
    """Four claims on "Claim Processing" (steps Submit Claim → Review Claim → Approve/Reject):

    * c1 (alice): started day 0 09:00, submitted 15:00 (→ Review), approved day 1 09:00
      (→ Approve/Reject), approved day 2 12:00 (completed);
    * c2 (bob): started day 0 10:00, submitted day 1 10:00 (→ Review), cancelled day 2 10:00;
    * c3 (alice): started day 1 12:00, on hold 13:00, resumed day 2 08:00;
    * c4 (bob): started the day before the window, 12:00, left on Draft.
    """
    alice = make_user("alice", *VIEW)
    bob = make_user("bob", *VIEW)
    claims = {
        name: Claim.objects.create(title=name, claimant="x", amount=Decimal(10), owner=owner)
        for name, owner in (("c1", alice), ("c2", bob), ("c3", alice), ("c4", bob))
    }
    instances = {}
    script = [
        (at(-1, 12), "c4", "start", None),
        (at(0, 9), "c1", "start", None),
        (at(0, 10), "c2", "start", None),
        (at(0, 15), "c1", "status", "Submitted"),
        (at(1, 9), "c1", "status", "Approved"),
        (at(1, 10), "c2", "status", "Submitted"),
        (at(1, 12), "c3", "start", None),
        (at(1, 13), "c3", "hold", None),
        (at(2, 8), "c3", "resume", None),
        (at(2, 10), "c2", "cancel", None),
        (at(2, 12), "c1", "status", "Approved"),
    ]
    for when, name, action, status in script:
        with time_machine.travel(when, tick=False):
            if action == "start":
                instances[name] = services.start_workflow_instance("Claim Processing", claims[name])
            elif action == "status":
                instances[name] = services.update_workflow_step_status(instances[name], status)
            elif action == "hold":
                instances[name] = services.set_workflow_on_hold(instances[name])
            elif action == "resume":
                instances[name] = services.resume_workflow_instance(instances[name])
            else:
                instances[name] = services.cancel_workflow_instance(instances[name])
    assert instances["c1"].state == "COMPLETED" and instances["c2"].state == "CANCELLED"
    return {"alice": alice, "bob": bob}


def by_name(series: list[dict], key: str = "step") -> dict[str, list[int]]:
    return {item[key]["name"]: item["counts"] for item in series}


def times(stats: dict) -> dict[str, tuple[int, float, float]]:
    return {
        t["step"]["name"]: (
            t["visits"],
            round(t["p50Seconds"] / 3600, 6),
            round(t["p90Seconds"] / 3600, 6),
        )
        for t in stats["timeOnStep"]
    }


def test_the_figures_are_those_the_history_implies(story, as_viewer):
    stats = as_viewer.data(STATS, WINDOW)["workflowStats"]

    assert stats["workflow"] == {"name": "Claim Processing"}
    assert stats["bucket"] == "DAY"
    days = [DAY0 + dt.timedelta(days=i) for i in range(3)]
    assert stats["buckets"] == [day.isoformat() for day in days]
    assert (stats["since"], stats["until"]) == (WINDOW["since"], WINDOW["until"])
    # unfinished instances at the end of each day: c4 and c2 on Draft, c1 in review (day 0);
    # c1 awaiting decision, c2 in review, c3 on hold, c4 (day 1); c3 resumed and c4 (day 2)
    assert by_name(stats["instancesOnStep"]) == {
        "Submit Claim": [2, 2, 2],
        "Review Claim": [1, 1, 0],
        "Approve/Reject": [0, 1, 0],
    }
    statuses = {
        (s["status"]["step"]["name"], s["status"]["name"]): s["counts"]
        for s in stats["instancesOnStatus"]
    }
    assert statuses[("Submit Claim", "Draft")] == [2, 1, 2]
    assert statuses[("Submit Claim", "On Hold")] == [0, 1, 0]
    assert statuses[("Review Claim", "Under Review")] == [1, 1, 0]
    assert statuses[("Approve/Reject", "Awaiting Decision")] == [0, 1, 0]
    assert sum(sum(counts) for counts in statuses.values()) == 6 + 2 + 1  # nothing else
    assert [(p["started"], p["completed"], p["cancelled"]) for p in stats["throughput"]] == [
        (2, 0, 0),
        (1, 0, 0),
        (0, 1, 1),
    ]
    assert [p["start"] for p in stats["throughput"]] == stats["buckets"]
    # visits that ended in the window: Submit 6 h (c1) and 24 h (c2); Review 18 h (c1) and
    # 24 h (c2, cancelled on it); Approve/Reject 27 h (c1, completed on it). A hold is no visit.
    # Percentiles interpolate between ranks: p90 of 6 h and 24 h is 6 + 0.9 × 18 = 22.2 h.
    assert times(stats) == (
        {
            "Submit Claim": (2, 15.0, 22.2),
            "Review Claim": (2, 21.0, 23.4),
            "Approve/Reject": (1, 27.0, 27.0),
        }
    )
    assert list(times(stats)) == ["Submit Claim", "Review Claim", "Approve/Reject"]


def test_a_claimant_counts_only_their_own_instances(story):
    stats = client_for(story["alice"]).data(STATS, WINDOW)["workflowStats"]

    # alice owns c1 and c3 only
    assert by_name(stats["instancesOnStep"]) == {
        "Submit Claim": [0, 1, 1],
        "Review Claim": [1, 0, 0],
        "Approve/Reject": [0, 1, 0],
    }
    assert [(p["started"], p["completed"], p["cancelled"]) for p in stats["throughput"]] == [
        (1, 0, 0),
        (1, 0, 0),
        (0, 1, 0),
    ]
    assert times(stats) == (
        {
            "Submit Claim": (1, 6.0, 6.0),
            "Review Claim": (1, 18.0, 18.0),
            "Approve/Reject": (1, 27.0, 27.0),
        }
    )


def test_hourly_buckets_and_the_default_window_end_now(story, as_viewer):
    hourly = {**WINDOW, "bucket": "HOUR", "since": at(0, 9).isoformat()}
    hourly["until"] = at(0, 12).isoformat()
    stats = as_viewer.data(STATS, hourly)["workflowStats"]
    assert len(stats["buckets"]) == 3
    assert [p["started"] for p in stats["throughput"]] == [1, 1, 0]
    assert by_name(stats["instancesOnStep"])["Submit Claim"] == [2, 3, 3]  # c4, then c1, c2

    with time_machine.travel(at(2, 12) + dt.timedelta(minutes=30), tick=False):
        recent = as_viewer.data(STATS, {"workflow": {"name": "Claim Processing"}})["workflowStats"]
    assert len(recent["buckets"]) == 30
    assert recent["buckets"][-1] == at(2, 0).isoformat()  # the day running now, last
    assert recent["until"] == at(3, 0).isoformat()
    # now: c3 and c4 on Draft; and the day before (day 1) as above
    assert by_name(recent["instancesOnStep"])["Submit Claim"][-2:] == [2, 2]
    assert by_name(recent["instancesOnStep"])["Approve/Reject"][-2:] == [1, 0]


def test_the_workflow_by_id_and_unknown_workflows(story, as_viewer, claim_workflow):
    by_id = {**WINDOW, "workflow": {"id": gid("Workflow", claim_workflow.pk)}}
    assert as_viewer.data(STATS, by_id)["workflowStats"]["workflow"]["name"] == "Claim Processing"
    assert as_viewer.data(STATS, {**WINDOW, "workflow": {"name": "Nope"}})["workflowStats"] is None
    assert as_viewer.data(STATS, {**WINDOW, "workflow": {"id": gid("Workflow", 999)}}) == {
        "workflowStats": None
    }
    # an ID beyond any primary key is no workflow either, answered the same way
    assert as_viewer.data(STATS, {**WINDOW, "workflow": {"id": gid("Workflow", 10**30)}}) == {
        "workflowStats": None
    }


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"since": at(2, 0).isoformat(), "until": at(1, 0).isoformat()}, "since"),
        ({"since": at(1, 0).isoformat(), "until": at(1, 0).isoformat()}, "since"),
        ({"since": at(-97, 0).isoformat(), "until": at(0, 0).isoformat()}, "since"),
        ({"bucket": "HOUR", "since": at(0, 0).isoformat(), "until": at(4, 1).isoformat()}, "since"),
        # the ends of the calendar: a window whose last bucket would end after the year 9999,
        # a default window that would start before the year 1, an offset that moves a date out
        ({"since": "9999-12-28T00:00:00Z", "until": "9999-12-31T23:59:59Z"}, "until"),
        (
            {"bucket": "HOUR", "since": "9999-12-31T00:00:00Z", "until": "9999-12-31T23:30:00Z"},
            "until",
        ),
        ({"bucket": "HOUR", "since": None, "until": "9999-12-31T23:59:59.999999Z"}, "until"),
        ({"since": None, "until": "0001-01-02T00:00:00Z"}, "until"),
        ({"since": "0001-01-01T00:00:00+14:00", "until": "0001-01-05T00:00:00Z"}, "since"),
        ({"since": "9999-12-30T00:00:00Z", "until": "9999-12-31T23:00:00-12:00"}, "until"),
    ],
)
def test_windows_out_of_bounds_are_refused(story, as_viewer, variables, field):
    result = as_viewer(STATS, {**WINDOW, **variables})
    assert result["data"] == {"workflowStats": None}
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["field"] == field
    assert "9999-12-3" not in error["message"] and "0001-01" not in error["message"]  # no values


def test_the_workflow_is_given_by_name_or_by_id_not_both(story, as_viewer, claim_workflow):
    both = {"name": "Claim Processing", "id": gid("Workflow", claim_workflow.pk)}
    for workflow in (both, {}):  # refused by validation (`@oneOf`), before anything runs
        result = as_viewer(STATS, {**WINDOW, "workflow": workflow})
        assert result.get("data") is None
        [error] = result["errors"]
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert "exactly one key" in error["message"]


def test_a_window_of_the_largest_size_is_accepted(story, as_viewer):
    variables = {**WINDOW, "since": at(-93, 0).isoformat(), "until": at(3, 0).isoformat()}
    stats = as_viewer.data(STATS, variables)["workflowStats"]
    assert len(stats["buckets"]) == 96
    assert by_name(stats["instancesOnStep"])["Submit Claim"][-4:] == [1, 2, 2, 2]


def test_needs_the_permission_to_view_instances(story, as_nobody, anon):
    for client in (as_nobody, anon):
        result = client(STATS, WINDOW)
        assert result["data"] == {"workflowStats": None}
        assert result["errors"][0]["extensions"]["code"] == "PERMISSION_DENIED"


def test_a_visit_that_began_before_the_window_counts_from_its_start(story, as_viewer):
    window = {**WINDOW, "since": at(1, 0).isoformat()}
    stats = as_viewer.data(STATS, window)["workflowStats"]
    # ended in days 1-2: c2 left Submit (entered day 0 10:00) and c1 left Review (entered
    # day 0 15:00), both entered before the window; c2 left Review, c1 finished Approve/Reject
    assert times(stats) == {
        "Submit Claim": (1, 24.0, 24.0),
        "Review Claim": (2, 21.0, 23.4),
        "Approve/Reject": (1, 27.0, 27.0),
    }


def test_instances_on_a_model_the_viewer_may_not_view_are_not_counted(as_viewer, as_admin):
    """A reviewer sees every claim but no document: a workflow running on both counts only the
    claims' instances for them (the visibility rule applies even when it keeps most rows)."""
    from tests.conftest import make_workflow, two_steps
    from tests.testapp.models import Document

    make_workflow("Mixed", two_steps(content_types=["claims.claim", "testapp.document"]))
    claim = Claim.objects.create(title="c", claimant="x", amount=Decimal(1))
    services.start_workflow_instance("Mixed", claim)
    services.start_workflow_instance("Mixed", Document.objects.create())

    def started(gql) -> int:
        stats = gql.data(STATS, {"workflow": {"name": "Mixed"}})["workflowStats"]
        return sum(point["started"] for point in stats["throughput"])

    assert (started(as_viewer), started(as_admin)) == (1, 2)


def test_a_change_in_the_bucket_running_now_is_seen_at_once(story, as_viewer, claim_workflow):
    """The closed days' figures are kept after the first read; what happens today is not."""
    recent = {"workflow": {"name": "Claim Processing"}}
    with time_machine.travel(at(2, 12) + dt.timedelta(minutes=30), tick=False):
        before = as_viewer.data(STATS, recent)["workflowStats"]
    with time_machine.travel(at(2, 13), tick=False):
        c5 = Claim.objects.create(title="c5", claimant="x", amount=Decimal(10))
        services.start_workflow_instance("Claim Processing", c5)
        c3 = claim_workflow.instances.get(object_id=Claim.objects.get(title="c3").pk)
        services.update_workflow_step_status(c3, "Submitted")
    with time_machine.travel(at(2, 13) + dt.timedelta(minutes=1), tick=False):
        after = as_viewer.data(STATS, recent)["workflowStats"]

    assert [p["started"] for p in before["throughput"][-3:]] == [2, 1, 0]
    assert [p["started"] for p in after["throughput"][-3:]] == [2, 1, 1]
    assert by_name(before["instancesOnStep"])["Submit Claim"][-3:] == [2, 2, 2]  # c3, c4
    assert by_name(after["instancesOnStep"])["Submit Claim"][-3:] == [2, 2, 2]  # c4, c5
    assert by_name(after["instancesOnStep"])["Review Claim"][-3:] == [1, 1, 1]  # c3
    # c3 entered Submit on day 1 at 12:00 and left it today at 13:00: a visit of 25 h
    assert times(after)["Submit Claim"] == (3, 24.0, 24.8)


def test_a_bucket_just_over_is_read_again_until_it_settles(story, as_viewer):
    """An event dated in a bucket that ended a moment ago (its transaction committed late) is
    counted: a bucket is kept only once it ended ``SETTLED_AFTER`` ago."""
    recent = {"workflow": {"name": "Claim Processing"}}
    with time_machine.travel(at(3, 0) + dt.timedelta(minutes=5), tick=False):
        assert as_viewer.data(STATS, recent)["workflowStats"]["throughput"][-2]["started"] == 0
    with time_machine.travel(at(3, 0) - dt.timedelta(minutes=1), tick=False):
        late = Claim.objects.create(title="late", claimant="x", amount=Decimal(10))
        services.start_workflow_instance("Claim Processing", late)
    with time_machine.travel(at(3, 0) + dt.timedelta(minutes=6), tick=False):
        stats = as_viewer.data(STATS, recent)["workflowStats"]
    assert [p["started"] for p in stats["throughput"][-2:]] == [1, 0]  # day 2, day 3


def test_a_narrower_viewer_never_gets_the_kept_figures(story, as_viewer):
    """The reviewer's read keeps the window's days; alice (her own claims only) is still
    counted on hers, and the reviewer still gets every instance's figures."""
    reviewer = as_viewer.data(STATS, WINDOW)["workflowStats"]
    alice = client_for(story["alice"]).data(STATS, WINDOW)["workflowStats"]
    again = as_viewer.data(STATS, WINDOW)["workflowStats"]
    and_again = as_viewer.data(STATS, WINDOW)["workflowStats"]

    assert by_name(alice["instancesOnStep"])["Submit Claim"] == [0, 1, 1]
    assert [p["started"] for p in alice["throughput"]] == [1, 1, 0]
    assert times(alice)["Submit Claim"] == (1, 6.0, 6.0)
    assert again == reviewer == and_again
    assert by_name(again["instancesOnStep"])["Submit Claim"] == [2, 2, 2]
    assert times(again)["Submit Claim"] == (2, 15.0, 22.2)


def test_a_past_window_read_again_reads_no_visit(story, as_viewer):
    """Every bucket of a past window is kept after the first read: the second one reads the
    history once (the current counts and the moves since the window), not its visits again."""

    def history_reads() -> int:
        with CaptureQueriesContext(connection) as read:
            as_viewer.data(STATS, WINDOW)
        return sum('"django_steps_workflowevent"' in q["sql"] for q in read.captured_queries)

    assert (history_reads(), history_reads(), history_reads()) == (2, 1, 1)
