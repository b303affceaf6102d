// Live changes; resubscribe with `after` = the last `cursor` received.
import { graphql } from "relay-runtime";

import type { InstanceEventsSubscription$data } from "./__generated__/InstanceEventsSubscription.graphql";

export const InstanceEventsSubscription = graphql`
  subscription InstanceEventsSubscription($workflowName: String, $after: String) {
    workflowInstanceEvents(workflowName: $workflowName, after: $after) {
      id
      cursor
      kind
      createdAt
      actor {
        ...UserBadge_user
      }
      instance {
        id
        ...WorkflowInstanceCard_instance
      }
    }
  }
`;

export function lastCursor(data: InstanceEventsSubscription$data): string {
  return data.workflowInstanceEvents.cursor;
}
