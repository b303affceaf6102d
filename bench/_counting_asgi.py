"""The demo's ASGI application, for the workers of ``bench/subscriptions.py``: on ``SIGUSR1`` the
worker appends its fan-out counters (:data:`graphql_api.live.shared.STATS`: executions, results
shared, of which written directly by the hub) as one JSON line to
``$BENCH_FANOUT_STATS.<pid>``, so the bench reads them before and after the commits."""

import json
import os
import signal

from demo.asgi import application  # noqa: F401  (what uvicorn serves)


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
    }
    with open(f"{path}.{os.getpid()}", "a") as out:
        out.write(json.dumps(counters) + "\n")


signal.signal(signal.SIGUSR1, _write_counters)
