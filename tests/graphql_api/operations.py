"""Every operation the GraphQL tests send. They are validated against the committed
``schema.graphql`` (test_schema.py), so they double as examples for client developers."""

INSTANCE_FIELDS = """
fragment InstanceFields on WorkflowInstance {
  id
  state
  version
  contentType
  objectId
  startedAt
  completedAt
  isCompleted
  isAwaitingTransition
  workflow { id name }
  currentStep { id name }
  currentStepStatus { id name }
  availableStatuses { name }
}
"""

MESSAGES = """
fragment Messages on OperationInfo {
  messages { kind code field message }
}
"""

# ----------------------------------------------------------------------------------- queries

WORKFLOWS = """
query Workflows($filters: WorkflowFilter, $ordering: [WorkflowOrder!]! = [], $first: Int = 20,
  $after: String) {
  workflows(filters: $filters, ordering: $ordering, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges {
      cursor
      node {
        id name description mermaid
        steps {
          id name order isInitialStep isFinalStep
          statuses { id name isDefaultStatus isCompletionStatus isCancellationStatus
            isOnHoldStatus }
        }
        transitions { id condition priority fromStep { name } toStep { name } }
      }
    }
  }
}
"""

WORKFLOW = """
query Workflow($name: String!) {
  workflow(name: $name) {
    id name
    steps { name statuses { name } outgoingTransitions { toStep { name } } }
    instances(first: 10) { totalCount edges { node { id state } } }
  }
}
"""

INSTANCES = (
    INSTANCE_FIELDS
    + """
query Instances($filters: WorkflowInstanceFilter, $ordering: [WorkflowInstanceOrder!]! = [],
  $first: Int, $last: Int, $after: String, $before: String) {
  workflowInstances(filters: $filters, ordering: $ordering, first: $first, last: $last,
    after: $after, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { ...InstanceFields } }
  }
}
"""
)

#: The page of the query-count test: instances with workflow, step, status and history.
INSTANCES_WITH_HISTORY = """
query InstancesWithHistory($first: Int!) {
  workflowInstances(first: $first) {
    totalCount
    edges {
      node {
        id state version contentType objectId
        workflow { id name }
        currentStep { id name }
        currentStepStatus { id name isCompletionStatus }
        history(first: 10) { edges { node {
          id kind cursor sequence state createdAt context
          fromStep { name } toStep { name } fromStatus { name } toStatus { name }
          requestedStatus { name } transition { id } actor { id username }
        } } }
      }
    }
  }
}
"""

INSTANCE = (
    INSTANCE_FIELDS
    + """
query Instance($id: ID!) {
  workflowInstance(id: $id) {
    ...InstanceFields
    history(first: 100) { edges { node {
      id kind cursor sequence state createdAt context
      fromStep { name } fromStatus { name } toStep { name } toStatus { name }
      requestedStatus { name } transition { id condition } actor { id username }
      instance { id } workflow { name }
    } } }
  }
}
"""
)

NODE = """
query Node($id: ID!) {
  node(id: $id) {
    __typename
    id
    ... on Workflow { name }
    ... on WorkflowStep { name }
    ... on WorkflowStepStatus { name }
    ... on WorkflowTransition { condition }
    ... on WorkflowInstance { state }
    ... on WorkflowEvent { kind }
  }
}
"""

EVALUATE = """
query Evaluate($instanceId: ID!, $context: JSON) {
  evaluateTransitions(instanceId: $instanceId, context: $context) {
    instance { id }
    evaluations { transition { id toStep { name } } priority condition result error wouldFire }
    fired { transition { toStep { name } } }
    error
  }
}
"""

ME = """
query Me { me { id username } }
"""

# --------------------------------------------------------------------------------- mutations

START = (
    INSTANCE_FIELDS
    + MESSAGES
    + """
mutation Start($input: StartWorkflowInstanceInput!) {
  startWorkflowInstance(input: $input) { __typename ...InstanceFields ...Messages }
}
"""
)

UPDATE_STATUS = (
    INSTANCE_FIELDS
    + MESSAGES
    + """
mutation UpdateStatus($input: UpdateWorkflowStepStatusInput!) {
  updateWorkflowStepStatus(input: $input) {
    __typename
    ...InstanceFields
    ... on WorkflowInstance { lastEvent { kind actor { username } context transition { id } } }
    ...Messages
  }
}
"""
)


def instance_mutation(name: str, field: str, input_type: str) -> str:
    """A mutation on one instance answering the instance's fields or the messages."""
    return (
        INSTANCE_FIELDS
        + MESSAGES
        + f"""
mutation {name}($input: {input_type}!) {{
  {field}(input: $input) {{ __typename ...InstanceFields ...Messages }}
}}
"""
    )


ADVANCE = instance_mutation("Advance", "advanceWorkflowInstance", "AdvanceWorkflowInstanceInput")

HOLD = instance_mutation("Hold", "setWorkflowOnHold", "SetWorkflowOnHoldInput")

RESUME = instance_mutation("Resume", "resumeWorkflowInstance", "ResumeWorkflowInstanceInput")

CANCEL = instance_mutation("Cancel", "cancelWorkflowInstance", "CancelWorkflowInstanceInput")


def definition_mutation(name: str, field: str, workflow: str) -> str:
    """A mutation taking a whole definition, answering the ``workflow`` fields or the messages."""
    return (
        MESSAGES
        + f"""
mutation {name}($input: WorkflowDefinitionInput!) {{
  {field}(input: $input) {{ __typename ... on Workflow {{ {workflow} }} ...Messages }}
}}
"""
    )


CREATE_WORKFLOW = definition_mutation(
    "CreateWorkflow",
    "createWorkflow",
    """id name description
      steps { name order isInitialStep isFinalStep statuses { name isDefaultStatus
        isCompletionStatus } }
      transitions { fromStep { name } toStep { name } condition priority }""",
)

UPDATE_WORKFLOW = definition_mutation(
    "UpdateWorkflow",
    "updateWorkflow",
    "id name description steps { name statuses { name } } transitions { condition }",
)

DELETE_WORKFLOW = (
    MESSAGES
    + """
mutation DeleteWorkflow($input: DeleteWorkflowInput!) {
  deleteWorkflow(input: $input) { __typename ... on DeletedWorkflow { id workflowId name }
    ...Messages }
}
"""
)

LOGIN = (
    MESSAGES
    + """
mutation Login($username: String!, $password: String!) {
  login(username: $username, password: $password) { __typename ... on User { id username }
    ...Messages }
}
"""
)

LOGOUT = """
mutation Logout { logout }
"""

#: Each history entry's instance with its history again: far over the default cost limit.
NESTED_HISTORY = """
query Nested($id: ID!) {
  workflowInstance(id: $id) {
    history(first: 100) { edges { node { instance { history(first: 100) { edges { node { id kind }
      } } } } } }
  }
}
"""

#: Many aliases of a page of instances with their history: a lot of work without a time budget
#: (the cost limit refuses it; the time-budget tests and bench/graphql_cost.py turn that off).
HEAVY = "{{ {} }}".format(
    " ".join(
        f"a{i}: workflowInstances(first: 100) {{ edges {{ node {{ id history(first: 100) "
        "{ edges { node { kind toStep { name statuses { name } } actor { username } } } } "
        "currentStep { instanceCounts { total } } } } }"
        for i in range(20)
    )
)


def instance_changes(instance_id: str, status: str) -> list[tuple[str, str, dict]]:
    """Every mutation changing one instance (to ``status`` for the status update), as
    ``(operation, payload field, variables)``."""
    one = {"input": {"instanceId": instance_id}}
    return [
        (
            UPDATE_STATUS,
            "updateWorkflowStepStatus",
            {"input": {"instanceId": instance_id, "statusName": status}},
        ),
        (ADVANCE, "advanceWorkflowInstance", one),
        (HOLD, "setWorkflowOnHold", one),
        (RESUME, "resumeWorkflowInstance", one),
        (CANCEL, "cancelWorkflowInstance", one),
    ]


ALL = {
    name: value
    for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, str) and ("query " in value or "mutation " in value)
}


def events(instance: dict) -> list[dict]:
    """The events of an instance's ``history`` page, oldest first."""
    return [edge["node"] for edge in instance["history"]["edges"]]
