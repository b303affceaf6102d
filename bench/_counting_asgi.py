"""The demo's ASGI application, for the workers of ``bench/subscriptions.py``: on ``SIGUSR1`` the
worker appends its fan-out counters (:data:`graphql_api.live.shared.STATS`: executions, results
shared, of which written directly by the hub) as one JSON line to
``$BENCH_FANOUT_STATS.<pid>``, so the bench reads them before and after the commits.

It also counts the CPU time (of the thread, in seconds: ``hub_cpu``) of the hub's direct writes
(:mod:`graphql_api.live.direct`: ``FanOut._deliver`` and ``DirectSink.drain``), the per-socket
part of a delivery apart from what each commit costs once (its mutation, the hub's read, the
leader's execution).

With ``BENCH_PROFILE`` set, the first ``SIGUSR1`` also starts :mod:`cProfile` on the event loop's
thread and the second writes what it saw to ``$BENCH_PROFILE.<pid>`` (the commit phase's
profile: where a delivery's CPU goes)."""

import cProfile
import json
import os
import signal
import time

from demo.asgi import application  # noqa: F401  (what uvicorn serves)
from graphql_api.live import direct

_HUB = {"cpu": 0.0, "depth": 0}


def _timed(function):
    def timed(*args, **kwargs):
        _HUB["depth"] += 1
        start = time.thread_time() if _HUB["depth"] == 1 else None
        try:
            return function(*args, **kwargs)
        finally:
            _HUB["depth"] -= 1
            if start is not None:  # the outermost call only: _deliver starts the next ones
                _HUB["cpu"] += time.thread_time() - start

    return timed


direct.FanOut._deliver = _timed(direct.FanOut._deliver)
direct.DirectSink.drain = _timed(direct.DirectSink.drain)


def _write_counters(signum, frame) -> None:
    from graphql_api.live.shared import STATS

    path = os.environ.get("BENCH_FANOUT_STATS")
    if not path:
        return
    counters = {
        "executions": STATS.executions,
        "shared": STATS.shared,
        "direct": STATS.direct,
        "serialised": STATS.serialised,
        "hub_cpu": _HUB["cpu"],
        # The signal is handled on the event loop's thread: its CPU, apart from the threads
        # running the ORM (the mutations, the hub's reads).
        "loop_cpu": time.thread_time(),
    }
    with open(f"{path}.{os.getpid()}", "a") as out:
        out.write(json.dumps(counters) + "\n")
    _toggle_profile()


_PROFILE: dict = {}


def _toggle_profile() -> None:
    path = os.environ.get("BENCH_PROFILE")
    if not path:
        return
    profile = _PROFILE.pop("running", None)
    if profile is None:
        _PROFILE["running"] = profile = cProfile.Profile()
        profile.enable()
    else:
        profile.disable()
        profile.dump_stats(f"{path}.{os.getpid()}")


signal.signal(signal.SIGUSR1, _write_counters)
