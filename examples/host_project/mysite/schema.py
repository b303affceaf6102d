# mysite/schema.py
from graphql_api.composition import compose_schema
from invoices.schema import Query

# Your Query merged with django-steps' Query, Mutation and Subscription. Your type named `User`
# keeps its name; django-steps' is `WorkflowUser` in this schema.
schema = compose_schema(query=Query, rename={"User": "WorkflowUser"})
