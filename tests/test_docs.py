"""What the README and docs/*.md tell client developers holds against the committed schema:
every GraphQL document they show validates (and uses no deprecated field), and the lists they
give of schema facts are complete.

A snippet meant to be partial (a fragment of a document, not one to send) is marked by the line
``<!-- partial snippet -->`` right before its fence; it is then not validated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from graphql import (
    GraphQLObjectType,
    build_schema,
    parse,
    specified_rules,
    validate,
)
from graphql.validation import NoDeprecatedCustomRule

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCHEMA = build_schema((ROOT / "schema.graphql").read_text())
PARTIAL = "<!-- partial snippet -->"

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", flags=re.S | re.M)
#: GraphQL sent from a JavaScript snippet: `query: "…"` (a string literal, one line).
QUERY_STRING = re.compile(r"""\bquery:\s*(["'])(.+?)\1""")


@dataclass(frozen=True)
class Snippet:
    where: str
    text: str
    partial: bool


def snippets() -> list[Snippet]:
    found = []
    for path in DOCUMENTS:
        markdown = path.read_text()
        for fence in FENCE.finditer(markdown):
            language, body = fence.group(1), fence.group(2)
            line = markdown.count("\n", 0, fence.start()) + 1
            where = f"{path.relative_to(ROOT)}:{line}"
            partial = markdown[: fence.start()].rstrip().endswith(PARTIAL)
            if language == "graphql":
                found.append(Snippet(where, body, partial))
            elif language in ("js", "ts", "javascript", "typescript"):
                found += [Snippet(where, m.group(2), partial) for m in QUERY_STRING.finditer(body)]
    return found


SNIPPETS = snippets()


def test_the_docs_show_queries_mutations_and_subscriptions():
    """The collection finds what it checks (a test over no snippet would pass vacuously)."""
    kinds = {s.text.lstrip().split(None, 1)[0] for s in SNIPPETS}
    assert {"query", "mutation", "subscription", "{"} <= kinds
    assert len(SNIPPETS) >= 10
    assert any(s.where.startswith("docs/") for s in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.where for s in SNIPPETS])
def test_each_snippet_validates_against_the_schema_without_deprecated_fields(snippet):
    if snippet.partial:
        pytest.skip("marked partial")  # explicit in the doc: `<!-- partial snippet -->`
    errors = validate(SCHEMA, parse(snippet.text), [*specified_rules, NoDeprecatedCustomRule])
    assert errors == [], f"{snippet.where}: {[e.message for e in errors]}"


def test_the_graphcache_list_names_every_object_type_without_an_id():
    guide = (ROOT / "docs" / "graphql.md").read_text()
    listed = re.search(r"<!-- unkeyed-types -->(.*?)<!-- /unkeyed-types -->", guide, flags=re.S)
    assert listed, "docs/graphql.md lost its <!-- unkeyed-types --> list"
    roots = {SCHEMA.query_type.name, SCHEMA.mutation_type.name, SCHEMA.subscription_type.name}
    unkeyed = sorted(
        name
        for name, named in SCHEMA.type_map.items()
        if isinstance(named, GraphQLObjectType)
        and not name.startswith("__")
        and name not in roots
        and "id" not in named.fields
    )
    assert re.findall(r"`(\w+)`", listed.group(1)) == unkeyed, (
        "docs/graphql.md, Graphcache: list exactly these, in this order: "
        + ", ".join(f"`{name}`" for name in unkeyed)
    )


def test_a_deprecated_field_in_a_snippet_is_reported():
    """The deprecation rule is on: the former mutation names are refused in a snippet."""
    document = parse('mutation { setWorkflowOnHold(input: {instanceId: "x"}) { __typename } }')
    errors = validate(SCHEMA, document, [*specified_rules, NoDeprecatedCustomRule])
    assert [e.message for e in errors] == [
        "The field Mutation.setWorkflowOnHold is deprecated. Use `holdWorkflowInstance`."
    ]
