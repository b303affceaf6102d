"""Run an operation at the start of a fresh frame-stack chunk of its own.

CPython (3.11+) keeps the frames of Python calls in per-thread chunks of 16 KiB. When a call does
not fit in the current chunk it gets a new one, ``mmap``-ed, and when that call returns the chunk
is ``munmap``-ed at once. GraphQL execution calls a few dozen functions deep and comes back down
for every field: when a chunk boundary happens to lie inside that range, every field pays an
``mmap``, a ``munmap`` and the page faults of the new pages. Where the boundary lies depends on
everything below the view (server, middleware, Django's handler), so a page of ten instances
under uvicorn made about a hundred such pairs per request while graphene-django's view, at
another depth, made none (``strace -c -f`` on both servers).

:func:`run_in_fresh_chunk` calls through a frame too large for any 16 KiB chunk: CPython then
allocates a chunk of 64 KiB for it, once per call, and the execution above it runs in the
remaining ~40 KiB without crossing a boundary (unless it goes deeper than that, where it is no
worse than before).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["FRAME_SLOTS", "run_in_fresh_chunk"]

T = TypeVar("T")

#: Local variables of the trampoline: 3,100 slots of 8 bytes (24.8 KiB) never fit in a 16 KiB
#: chunk, and CPython sizes the new chunk for the frame plus 1,000 slots of headroom: 64 KiB.
FRAME_SLOTS = 3100


def _trampoline_source(slots: int) -> str:
    # The locals are only declared (the assignment never runs): each is a NULL slot in the frame.
    names = " = ".join(f"_{i}" for i in range(slots))
    return (
        "def run_in_fresh_chunk(function, /, *args, **kwargs):\n"
        "    if function is None:\n"
        f"        {names} = None\n"
        "    return function(*args, **kwargs)\n"
    )


_namespace: dict[str, Any] = {}
exec(compile(_trampoline_source(FRAME_SLOTS), __file__, "exec"), _namespace)

run_in_fresh_chunk: Callable[..., Any] = _namespace["run_in_fresh_chunk"]
run_in_fresh_chunk.__module__ = __name__
run_in_fresh_chunk.__doc__ = """``function(*args, **kwargs)``, called from a frame that starts a
frame-stack chunk of its own (see the module docstring)."""
