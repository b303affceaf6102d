// A Node type's fragment can be refetched on its own: relay-compiler writes
// WorkflowInstanceCardRefetchQuery, which reads it again through `node(id:)`.
import { graphql } from "relay-runtime";

import type { WorkflowInstanceCard_instance$data } from "./__generated__/WorkflowInstanceCard_instance.graphql";

export const WorkflowInstanceCardFragment = graphql`
  fragment WorkflowInstanceCard_instance on WorkflowInstance
  @refetchable(queryName: "WorkflowInstanceCardRefetchQuery") {
    id
    state
    version
    contentType
    objectId
    updatedAt
    isAwaitingTransition
    workflow {
      name
    }
    currentStep {
      name
    }
    currentStepStatus {
      name
    }
    availableStatuses {
      id
      name
      isCompletionStatus
    }
  }
`;

export function cardTitle(card: WorkflowInstanceCard_instance$data): string {
  const status = card.availableStatuses.find((s) => s.name === card.currentStepStatus.name);
  const done = status?.isCompletionStatus ? " (done)" : "";
  return `${card.workflow.name}: ${card.currentStep.name} / ${card.currentStepStatus.name}${done} v${card.version}`;
}
