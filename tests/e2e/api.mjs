// A second client of the demo server for the browser tests: its own session over HTTP GraphQL
// (CSRF cookie and header, Origin and Referer as a browser sends them), logged in as `username`.

import { request as playwrightRequest } from "playwright-core";

export async function apiClient(baseUrl, username, password, assert) {
  const api = await playwrightRequest.newContext({ baseURL: baseUrl, extraHTTPHeaders: { Origin: baseUrl } });
  async function csrf() {
    const state = await api.storageState();
    const cookie = state.cookies.find((c) => c.name === "csrftoken");
    return cookie ? cookie.value : "";
  }
  async function gql(query, variables) {
    const response = await api.post("/graphql/", {
      headers: { "Content-Type": "application/json", "X-CSRFToken": await csrf(), Referer: baseUrl + "/" },
      data: { query, variables },
    });
    const body = await response.json();
    assert(!body.errors, "GraphQL errors from the second client", { errors: body.errors });
    return body.data;
  }
  await api.get("/graphql/", { headers: { Accept: "text/html" } }); // sets the csrftoken cookie
  const login = await gql(
    "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { __typename ... on User { username } } }",
    { u: username, p: password },
  );
  return { api, gql, login: login.login };
}
