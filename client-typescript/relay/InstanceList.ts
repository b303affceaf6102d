// Instances as a Relay connection: a pagination fragment on Query (refetchable, so Relay can
// load the next page), connection key `<Name>__<field>`, the filter as part of the key.
import { graphql } from "relay-runtime";

import type { InstanceListQuery$data } from "./__generated__/InstanceListQuery.graphql";
import type { InstanceList_query$data } from "./__generated__/InstanceList_query.graphql";

export const InstanceListFragment = graphql`
  fragment InstanceList_query on Query
  @argumentDefinitions(
    first: { type: "Int", defaultValue: 50 }
    after: { type: "String" }
    filters: { type: "WorkflowInstanceFilter" }
  )
  @refetchable(queryName: "InstanceListPaginationQuery") {
    workflowInstances(first: $first, after: $after, filters: $filters)
    @connection(key: "InstanceList__workflowInstances", filters: ["filters"]) {
      totalCount
      edges {
        node {
          id
          ...WorkflowInstanceCard_instance
        }
      }
    }
  }
`;

export const InstanceListQuery = graphql`
  query InstanceListQuery($filters: WorkflowInstanceFilter) {
    ...InstanceList_query @arguments(filters: $filters)
    me {
      ...UserBadge_user
    }
    workflows(first: 100) @connection(key: "InstanceList__workflows") {
      edges {
        node {
          id
          name
          updatedAt
        }
      }
    }
  }
`;

export function shown(list: InstanceList_query$data): string {
  const edges = list.workflowInstances.edges;
  return `${edges.length} of ${list.workflowInstances.totalCount ?? "?"}`;
}

export function workflowNames(data: InstanceListQuery$data): string[] {
  return data.workflows.edges.map((edge) => edge.node.name);
}
