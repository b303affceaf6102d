// Any object by its global ID. A fragment spread inside `node(...)` (typed `Node`) must be
// aliased: the field is then null unless the node is a WorkflowInstance.
import { graphql } from "relay-runtime";

import type { InstanceNodeQuery$data } from "./__generated__/InstanceNodeQuery.graphql";

export const InstanceNodeQuery = graphql`
  query InstanceNodeQuery($id: ID!) {
    node(id: $id) {
      __typename
      ...WorkflowInstanceCard_instance @alias(as: "instance")
    }
  }
`;

export function isInstance(data: InstanceNodeQuery$data): boolean {
  return data.node?.instance != null;
}
