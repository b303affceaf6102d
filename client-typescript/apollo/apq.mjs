/**
 * Apollo's persisted-query link against a running server (`node apollo/apq.mjs <graphql url>
 * <cookie header> <csrf token>`; run by tests/demo/test_typescript_apq.py with
 * `PERSISTED_QUERIES = "apq"`), as docs/graphql.md "Persisted queries" shows it:
 *
 * 1. a first client sends the hash alone over GET, gets PERSISTED_QUERY_NOT_FOUND, and sends
 *    the query with its hash over POST (the link does it by itself);
 * 2. a second client, which never sent the query, gets the answer for the hash alone over GET.
 *
 * Prints what went over the wire, as JSON, after asserting it.
 */
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";

import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";

const [url, cookie, csrfToken] = process.argv.slice(2);
assert.ok(url && cookie && csrfToken, "usage: node apollo/apq.mjs <url> <cookie> <csrf token>");

const sent = [];

/** fetch, with the session's cookie and CSRF header, noting each request and its answer. */
async function recordingFetch(input, init = {}) {
  const method = (init.method ?? "GET").toUpperCase();
  const target = new URL(String(input));
  const body = typeof init.body === "string" ? JSON.parse(init.body) : null;
  const headers = { ...init.headers, cookie, "x-csrftoken": csrfToken };
  const response = await fetch(input, { ...init, headers });
  const answer = JSON.parse(await response.clone().text());
  sent.push({
    method,
    query: method === "GET" ? target.searchParams.has("query") : Boolean(body?.query),
    status: response.status,
    code: answer.errors?.[0]?.extensions?.code ?? null,
  });
  return response;
}

function client() {
  const persisted = new PersistedQueryLink({
    sha256: (query) => createHash("sha256").update(query).digest("hex"),
    useGETForHashedQueries: true,
  });
  return new ApolloClient({
    link: ApolloLink.from([persisted, new HttpLink({ uri: url, fetch: recordingFetch })]),
    cache: new InMemoryCache(),
  });
}

// A document the server has not seen before (its persisted-query cache outlives a run).
const name = `Apq${randomUUID().replaceAll("-", "")}`;
const query = gql(`query ${name} { workflows(first: 5) { totalCount edges { node { id name } } } }`);

const first = await client().query({ query });
assert.deepEqual(sent, [
  { method: "GET", query: false, status: 200, code: "PERSISTED_QUERY_NOT_FOUND" },
  { method: "POST", query: true, status: 200, code: null },
]);
const second = await client().query({ query });
assert.deepEqual(sent.slice(2), [{ method: "GET", query: false, status: 200, code: null }]);
assert.deepEqual(second.data, first.data);
console.log(JSON.stringify({ sent, workflows: first.data.workflows.totalCount }));
