"""Schemathesis hooks of the fuzz test (loaded through ``SCHEMATHESIS_HOOKS``): arguments of type
``ID`` and ``String`` are drawn half the time from values that exist on the server (global IDs,
workflow and status names, "claims.claim"), so mutations reach real instances instead of stopping
at INVALID_ID / NOT_FOUND. The values come from the test in ``FUZZ_VALUES`` (JSON)."""

from __future__ import annotations

import json
import os

import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

_VALUES = json.loads(os.environ.get("FUZZ_VALUES", "{}"))


def _known_or_any(known: list[str]) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(known), st.text(max_size=60)).map(nodes.String)


if _VALUES.get("ids"):
    schemathesis.graphql.scalar("ID", _known_or_any(_VALUES["ids"]))
if _VALUES.get("strings"):
    schemathesis.graphql.scalar("String", _known_or_any(_VALUES["strings"]))
