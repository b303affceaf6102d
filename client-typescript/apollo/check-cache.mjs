/**
 * Checks the type policies of cache.mjs against the schema and against Apollo's cache itself
 * (`npm run apollo`, part of `npm run check`):
 *
 * 1. Every policy names a real type and field; every connection of a normalized type pages
 *    with relayStylePagination keyed by arguments it has; every list of normalized objects on a
 *    normalized type has a merge policy (a new one fails here until someone decides).
 * 2. With the example operations (../client/*.graphql) and server-shaped results, a plain
 *    InMemoryCache warns about `WorkflowInstance.availableStatuses` (the list shrinks when an
 *    instance is put on hold) and `Query.workflows` (two views select it differently); with
 *    the policies it warns about nothing, keeps `totalCount`, appends the second page of
 *    `workflowInstances`, keeps each filter's list apart and reads `workflowInstance(id:)` from
 *    the cache.
 *
 * Run with `node --conditions=development` so that Apollo's development checks are on.
 */
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { format } from "node:util";

import { InMemoryCache } from "@apollo/client";
import { loadDevMessages, loadErrorMessages } from "@apollo/client/dev";
import { __DEV__ } from "@apollo/client/utilities/environment";
import {
  buildSchema,
  getNamedType,
  getNullableType,
  isListType,
  isObjectType,
  Kind,
  parse,
} from "graphql";

import { createCache, typePolicies } from "./cache.mjs";

assert.ok(__DEV__, "run with node --conditions=development: Apollo's warnings are off otherwise");
loadDevMessages();
loadErrorMessages();

const here = new URL(".", import.meta.url);
const schema = buildSchema(readFileSync(new URL("../../schema.graphql", here), "utf8"));
/** @type {import("@apollo/client").PossibleTypesMap} */
const possibleTypes = JSON.parse(readFileSync(new URL("../src/possible-types.json", here), "utf8")).possibleTypes;

// ------------------------------------------------------------------ 1. against the schema

/** @param {import("graphql").GraphQLNamedType} type */
const normalized = (type) => isObjectType(type) && ("id" in type.getFields() || type === schema.getQueryType());
/** @param {import("graphql").GraphQLNamedType} type */
const isConnection = (type) => isObjectType(type) && "edges" in type.getFields() && "pageInfo" in type.getFields();

for (const [typeName, policy] of Object.entries(typePolicies)) {
  const type = schema.getType(typeName);
  assert.ok(type && isObjectType(type), `type policy for unknown type ${typeName}`);
  for (const fieldName of Object.keys(policy.fields ?? {})) {
    assert.ok(fieldName in type.getFields(), `type policy for unknown field ${typeName}.${fieldName}`);
  }
}
for (const type of Object.values(schema.getTypeMap())) {
  if (type.name.startsWith("__") || !normalized(type) || !isObjectType(type)) continue;
  for (const field of Object.values(type.getFields())) {
    const policy = /** @type {Record<string, any>} */ (typePolicies[type.name]?.fields ?? {})[field.name];
    const named = getNamedType(field.type);
    const where = `${type.name}.${field.name}`;
    if (isConnection(named)) {
      assert.ok(policy && Array.isArray(policy.keyArgs), `${where} is a connection: give it relayStylePagination`);
      const args = new Set(field.args.map((a) => a.name));
      for (const key of policy.keyArgs) assert.ok(args.has(key), `${where} has no argument ${key}`);
      for (const paging of ["first", "after", "last", "before"]) {
        assert.ok(!policy.keyArgs.includes(paging), `${where}: ${paging} must not be a key argument`);
      }
    } else if (isListType(getNullableType(field.type)) && normalized(named)) {
      assert.ok(policy && "merge" in policy, `${where} is a list of ${named.name}: give it a merge policy`);
    }
  }
}

// ------------------------------------------------------------------ 2. against Apollo's cache

const clientDir = new URL("../../client/", here);
const definitions = readdirSync(clientDir)
  .filter((name) => name.endsWith(".graphql"))
  .flatMap((name) => parse(readFileSync(new URL(name, clientDir), "utf8")).definitions);
const fragments = definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION);

/** One example operation with every fragment (Apollo picks what it needs). */
function operation(/** @type {string} */ name) {
  const op = definitions.find((d) => d.kind === Kind.OPERATION_DEFINITION && d.name?.value === name);
  assert.ok(op, `client/*.graphql has no operation ${name}`);
  return /** @type {import("graphql").DocumentNode} */ ({ kind: Kind.DOCUMENT, definitions: [op, ...fragments] });
}

/** An operation another view of the same app might send (not in client/). */
function extra(/** @type {string} */ text) {
  return parse(text + fragments.map((f) => "\n" + readFragment(f)).join(""));
}
function readFragment(/** @type {import("graphql").FragmentDefinitionNode} */ f) {
  return f.loc ? f.loc.source.body.slice(f.loc.start, f.loc.end) : "";
}

const T0 = "2026-01-01T12:00:00+00:00";
const flags = { isDefaultStatus: false, isCompletionStatus: false, isCancellationStatus: false, isOnHoldStatus: false };
const STATUSES = [
  { __typename: "WorkflowStepStatus", id: "S1", name: "Draft", ...flags, isDefaultStatus: true },
  { __typename: "WorkflowStepStatus", id: "S2", name: "Submitted", ...flags, isCompletionStatus: true },
  { __typename: "WorkflowStepStatus", id: "S3", name: "On Hold", ...flags, isOnHoldStatus: true },
  { __typename: "WorkflowStepStatus", id: "S4", name: "Withdrawn", ...flags, isCancellationStatus: true },
];
const STEP = { __typename: "WorkflowStep", id: "T1", name: "Submit Claim", order: 1 };

function instance(/** @type {number} */ n, { state = "ACTIVE", version = 1, status = STATUSES[0], available = STATUSES } = {}) {
  return {
    __typename: "WorkflowInstance",
    id: `I${n}`,
    state,
    version,
    contentType: "claims.claim",
    objectId: String(n),
    subject: { __typename: "WorkflowSubject", label: `Claim ${n}` },
    startedAt: T0,
    updatedAt: T0,
    completedAt: null,
    isAwaitingTransition: false,
    definitionVersion: 1,
    workflow: { __typename: "Workflow", id: "W1", name: "Claim Processing", version: 1 },
    currentStep: STEP,
    currentStepStatus: status,
    availableStatuses: available,
    viewerCan: {
      __typename: "WorkflowInstanceActions",
      statuses: available,
      hold: state === "ACTIVE",
      resume: state === "ON_HOLD",
      cancel: true,
      advance: false,
    },
  };
}

function page(/** @type {number[]} */ ns, /** @type {boolean} */ hasNextPage, total = 4) {
  return {
    workflowInstances: {
      __typename: "WorkflowInstanceConnection",
      totalCount: total,
      pageInfo: { __typename: "PageInfo", hasNextPage, endCursor: `c${ns[ns.length - 1]}` },
      edges: ns.map((n) => ({ __typename: "WorkflowInstanceEdge", node: instance(n) })),
    },
  };
}

const WORKFLOW = {
  __typename: "Workflow",
  id: "W1",
  name: "Claim Processing",
  description: "Claims",
  updatedAt: T0,
  version: 1,
  steps: [{ ...STEP, isInitialStep: true, isFinalStep: false }],
};

/** Writes the example results into `cache`; returns the warnings Apollo printed. */
function scenario(/** @type {InMemoryCache} */ cache) {
  const warnings = /** @type {string[]} */ ([]);
  const warn = console.warn;
  console.warn = (...args) => void warnings.push(format(...args));
  try {
    // The board: two pages of instances, then a list filtered to ON_HOLD.
    cache.writeQuery({ query: operation("WorkflowInstances"), variables: { first: 2 }, data: page([1, 2], true) });
    cache.writeQuery({ query: operation("WorkflowInstances"), variables: { first: 2, after: "c2" }, data: page([3, 4], false) });
    cache.writeQuery({
      query: operation("WorkflowInstances"),
      variables: { first: 2, filters: { state: "ON_HOLD" } },
      data: page([], false, 0),
    });
    // Instance 1 put on hold: on hold, only its cancellation status is still available.
    const held = instance(1, { state: "ON_HOLD", version: 2, status: STATUSES[2], available: [STATUSES[3]] });
    cache.writeQuery({
      query: operation("InstanceHistory"),
      variables: { id: "I1" },
      data: {
        workflowInstance: {
          ...held,
          history: {
            __typename: "WorkflowEventConnection",
            pageInfo: { __typename: "PageInfo", hasNextPage: false, endCursor: null },
            edges: [],
          },
        },
      },
    });
    // The definitions list, and a sidebar that selects the same field without totalCount.
    cache.writeQuery({
      query: operation("Workflows"),
      data: { workflows: { __typename: "WorkflowConnection", totalCount: 1, edges: [{ __typename: "WorkflowEdge", node: WORKFLOW }] } },
    });
    cache.writeQuery({
      query: extra("query Sidebar { workflows(first: 100) { edges { node { id name } } } }"),
      data: { workflows: { __typename: "WorkflowConnection", edges: [{ __typename: "WorkflowEdge", node: { __typename: "Workflow", id: "W1", name: "Claim Processing" } }] } },
    });
  } finally {
    console.warn = warn;
  }
  return warnings;
}

const plain = scenario(new InMemoryCache({ possibleTypes }));
for (const field of ["availableStatuses", "workflows"]) {
  assert.ok(
    plain.some((w) => w.includes(`Cache data may be lost when replacing the ${field} field`)),
    `a cache without the policies should warn about ${field} (is the advice still needed?)\n${plain.join("\n")}`,
  );
}

const cache = createCache(possibleTypes);
assert.deepEqual(scenario(cache), [], "the type policies should leave Apollo nothing to warn about");

const board = /** @type {any} */ (cache.readQuery({ query: operation("WorkflowInstances"), variables: { first: 2 } }));
assert.deepEqual(board.workflowInstances.edges.map((/** @type {any} */ e) => e.node.id), ["I1", "I2", "I3", "I4"]);
assert.equal(board.workflowInstances.totalCount, 4);
assert.equal(board.workflowInstances.pageInfo.hasNextPage, false);
assert.equal(board.workflowInstances.edges[0].node.state, "ON_HOLD");
assert.deepEqual(board.workflowInstances.edges[0].node.availableStatuses.map((/** @type {any} */ s) => s.name), ["Withdrawn"]);

const onHold = /** @type {any} */ (
  cache.readQuery({ query: operation("WorkflowInstances"), variables: { first: 2, filters: { state: "ON_HOLD" } } })
);
assert.deepEqual(onHold.workflowInstances.edges, [], "each filter keeps its own list");

const workflows = /** @type {any} */ (cache.readQuery({ query: operation("Workflows") }));
assert.equal(workflows.workflows.totalCount, 1, "totalCount survives a view that does not select it");
assert.equal(workflows.workflows.edges[0].node.description, "Claims");

const one = /** @type {any} */ (
  cache.readQuery({
    query: extra("query One($id: ID!) { workflowInstance(id: $id) { ...InstanceCard } }"),
    variables: { id: "I3" },
  })
);
assert.equal(one?.workflowInstance?.id, "I3", "workflowInstance(id:) reads the cached instance");

// One cursor per event: a live event (from workflowInstanceEvents) is appended to the cached
// history as the edge { cursor: event.cursor, node: event }, and the next page, fetched with
// `after` = that cursor, continues after it: no refetch, no duplicate.
const event = (/** @type {number} */ n) => ({
  __typename: "WorkflowEvent",
  id: `E${n}`,
  cursor: String(100 + n),
  kind: "STARTED",
  sequence: n,
  state: "ACTIVE",
  createdAt: T0,
  actor: null,
  fromStep: null,
  fromStatus: null,
  toStep: STEP,
  toStatus: STATUSES[0],
});
const edge = (/** @type {any} */ e) => ({ __typename: "WorkflowEventEdge", cursor: e.cursor, node: e });
const historyOf = (/** @type {any[]} */ events, /** @type {boolean} */ more) => ({
  workflowInstance: {
    ...instance(2),
    history: {
      __typename: "WorkflowEventConnection",
      pageInfo: { __typename: "PageInfo", hasNextPage: more, endCursor: events.at(-1)?.cursor ?? null },
      edges: events.map(edge),
    },
  },
});
cache.writeQuery({ query: operation("InstanceHistory"), variables: { id: "I2" }, data: historyOf([event(1), event(2)], false) });
const live = event(3);
const liveRef = cache.writeFragment({
  fragment: extra("fragment Live on WorkflowEvent { ...EventFields }"),
  fragmentName: "Live",
  data: live,
});
cache.modify({
  id: cache.identify({ __typename: "WorkflowInstance", id: "I2" }),
  fields: {
    history(/** @type {any} */ existing) {
      return {
        ...existing,
        edges: [...existing.edges, { __typename: "WorkflowEventEdge", cursor: live.cursor, node: liveRef }],
        pageInfo: { ...existing.pageInfo, endCursor: live.cursor },
      };
    },
  },
});
const appended = /** @type {any} */ (cache.readQuery({ query: operation("InstanceHistory"), variables: { id: "I2" } }));
assert.equal(appended.workflowInstance.history.pageInfo.endCursor, live.cursor);
cache.writeQuery({
  query: operation("InstanceHistory"),
  variables: { id: "I2", after: live.cursor },
  data: historyOf([event(4)], false),
});
const continued = /** @type {any} */ (cache.readQuery({ query: operation("InstanceHistory"), variables: { id: "I2" } }));
assert.deepEqual(
  continued.workflowInstance.history.edges.map((/** @type {any} */ e) => [e.cursor, e.node.id]),
  [["101", "E1"], ["102", "E2"], ["103", "E3"], ["104", "E4"]],
  "the page after the live event's cursor continues after it",
);

console.log(
  `apollo cache: ${Object.keys(typePolicies).length} type policies match the schema; ` +
    `without them ${plain.length} warnings, with them none`,
);
