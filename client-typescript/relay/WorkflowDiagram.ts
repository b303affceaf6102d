// The Mermaid text of the one workflow shown (never selected on a list).
import { graphql } from "relay-runtime";

import type { WorkflowDiagramQuery$data } from "./__generated__/WorkflowDiagramQuery.graphql";

export const WorkflowDiagramQuery = graphql`
  query WorkflowDiagramQuery($name: String!) {
    workflow(name: $name) {
      id
      updatedAt
      mermaid
    }
  }
`;

export function mermaidText(data: WorkflowDiagramQuery$data): string {
  return data.workflow?.mermaid ?? "";
}
