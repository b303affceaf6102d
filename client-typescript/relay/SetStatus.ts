// A mutation whose payload is the union `WorkflowInstance | OperationInfo | VersionConflict`:
// the instance's fields update the Relay store by `id` (also the conflict's `current`, the
// instance as now committed); errors carry stable codes.
import { graphql } from "relay-runtime";

import type { SetStatusMutation$data } from "./__generated__/SetStatusMutation.graphql";

export const SetStatusMutation = graphql`
  mutation SetStatusMutation($input: SetWorkflowInstanceStatusInput!) {
    setWorkflowInstanceStatus(input: $input) {
      __typename
      ... on WorkflowInstance {
        id
        ...WorkflowInstanceCard_instance @alias(as: "card")
      }
      ... on OperationInfo {
        messages {
          kind
          code
          field
          message
        }
      }
      ... on VersionConflict {
        code
        current {
          id
          version
        }
      }
    }
  }
`;

export function errorCodes(data: SetStatusMutation$data): string[] {
  const payload = data.setWorkflowInstanceStatus;
  switch (payload.__typename) {
    case "OperationInfo":
      return payload.messages.map((m) => m.code ?? m.kind);
    case "WorkflowInstance":
      return [];
    case "VersionConflict":
      return [payload.code];
    default:
      return ["UNEXPECTED_PAYLOAD"];
  }
}
