"""GraphQL API of django-steps (strawberry-graphql-django): types, queries, mutations, subscriptions."""
