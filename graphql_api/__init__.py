"""GraphQL API of django-steps (strawberry-graphql-django): types, queries, mutations,
subscriptions.

What a project uses (README, "Use it in your project"):

* :mod:`graphql_api.composition`: ``compose_schema()`` and our types, to build one schema with
  the project's own;
* :mod:`graphql_api.urls`: ``include("graphql_api.urls")`` or ``graphql_urls(schema)``;
* :mod:`graphql_api.routing`: ``get_application(schema)`` for ``asgi.py``;
* :mod:`graphql_api.views`: the view and ``error_response()``;
* :mod:`graphql_api.schemas`: how those helpers read a schema (object, dotted path, callable);
* :mod:`graphql_api.security.checks`: what ``manage.py check`` reports.

Importing this package (and ``routing``/``schemas``) touches no model: safe before
``django.setup()``.
"""
