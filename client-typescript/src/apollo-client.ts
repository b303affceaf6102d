/**
 * An Apollo Client for an SPA on another origin of the same site (docs/graphql.md, "Clients"):
 * session cookie sent with every request, the CSRF token read per request (login rotates it),
 * the cache from apollo/cache.mjs. Type-checked only, like usage.ts.
 */
import { ApolloClient, ApolloLink, HttpLink } from "@apollo/client";
import { SetContextLink } from "@apollo/client/link/context";

import { createCache } from "../apollo/cache.mjs";
import { useFragment } from "./gql";
import { InstanceCardFragmentDoc, WorkflowInstancesDocument, type InstanceCardFragment } from "./gql/graphql";
import generated from "./possible-types.json";

function csrfToken(): string {
  const match = document.cookie.match(/(?:^|; )csrftoken=([^;]*)/);
  return match?.[1] ? decodeURIComponent(match[1]) : "";
}

export function createClient(endpoint: string): ApolloClient {
  const csrf = new SetContextLink((previous) => ({
    headers: { ...previous["headers"], "X-CSRFToken": csrfToken() },
  }));
  return new ApolloClient({
    link: ApolloLink.from([csrf, new HttpLink({ uri: endpoint, credentials: "include" })]),
    cache: createCache(generated.possibleTypes),
  });
}

/** The first page of ACTIVE instances; later pages (`after`) are appended by the type policy. */
export async function activeInstances(client: ApolloClient): Promise<InstanceCardFragment[]> {
  const { data } = await client.query({
    query: WorkflowInstancesDocument,
    variables: { filters: { state: "ACTIVE" }, first: 50 },
  });
  return (data?.workflowInstances.edges ?? []).map((edge) => useFragment(InstanceCardFragmentDoc, edge.node));
}
