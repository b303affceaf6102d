"""GraphQL execution runs in a frame-stack chunk of its own: what a request costs does not depend
on how deep below it the server, middleware and handler happen to call."""

from __future__ import annotations

import sys

import pytest

from graphql_api.frames import run_in_fresh_chunk
from tests.graphql_api.conftest import submitted_claims

resource = pytest.importorskip("resource")

PAGE = """
query { workflowInstances(first: 20) { edges { node { id state version
  currentStep { name } currentStepStatus { name }
  history(first: 5) { edges { node { kind cursor createdAt } } } } } } }
"""

#: CPython's frame-stack chunk (16 KiB) in 8-byte slots; padding frames of 1/32 of it apart put
#: the request at every offset within a chunk.
CHUNK_SLOTS = 2048
STEP_SLOTS = CHUNK_SLOTS // 32


def _padding(slots: int):
    """A function whose frame holds ``slots`` more slots, calling its argument."""
    names = " = ".join(f"_{i}" for i in range(slots)) or "_"
    namespace: dict = {}
    exec(f"def pad(f):\n    if f is None:\n        {names} = None\n    return f()\n", namespace)
    return namespace["pad"]


def _page_faults(call) -> int:
    before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    call()
    return resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before


# ------------------------------------------------------------------------------ the trampoline


def test_the_trampoline_returns_what_the_function_returns_and_passes_its_arguments():
    assert run_in_fresh_chunk(lambda a, /, b, *, c: (a, b, c), 1, 2, c=3) == (1, 2, 3)


def test_the_trampoline_lets_exceptions_through():
    def fail():
        raise KeyError("x")

    with pytest.raises(KeyError):
        run_in_fresh_chunk(fail)


def test_the_trampoline_frame_is_too_large_for_a_16_kib_chunk():
    code = run_in_fresh_chunk.__code__
    assert (code.co_nlocals + code.co_stacksize) * 8 > CHUNK_SLOTS * 8


# ------------------------------------------------------------------------------- the endpoint


@pytest.mark.skipif(
    sys.implementation.name != "cpython" or not sys.platform.startswith("linux"),
    reason="frame-stack chunks are CPython's; per-thread page faults are Linux's",
)
def test_a_page_costs_no_new_stack_pages_per_field_at_any_call_depth(
    claim_workflow,
    as_admin,
    admin_user,
):
    """A chunk boundary inside execution's call range made every field map and fault in a new
    chunk (860 faults at the worst depth for this page); with execution in a chunk of its own a
    request faults in a few dozen pages at most (the chunk itself, and what runs below it),
    whatever the depth it is served at."""
    submitted_claims(20, admin_user)
    request = lambda: as_admin.data(PAGE)  # noqa: E731
    assert len(request()["workflowInstances"]["edges"]) == 20
    worst = 0
    for offset in range(32):
        pad = _padding(offset * STEP_SLOTS)
        # the fewest faults of two requests: the first at a depth may grow the heap
        faults = min(_page_faults(lambda: pad(request)) for _ in range(2))
        worst = max(worst, faults)
    assert worst < 200, worst
