"""The demo's dashboard page: a Django view that serves an HTML shell; the data comes from
the GraphQL API (queries and mutations over HTTP, live events over the WebSocket)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET
from graphql import parse

from graphql_api.security.persisted import operation_texts

#: The example client operations; the dashboard sends exactly these (and the tests validate
#: them against schema.graphql and generate a typed client from them).
CLIENT_DIR = Path(settings.BASE_DIR) / "client"


@lru_cache(maxsize=1)
def client_operations() -> dict[str, str]:
    """``{operation name: document}`` from ``client/*.graphql``; each document holds the
    operation and the fragments it uses (transitively), ready to POST."""
    sources = [path.read_text(encoding="utf-8") for path in sorted(CLIENT_DIR.glob("*.graphql"))]
    return {
        node.name.value: text
        for node, text in operation_texts(parse("\n".join(sources)))
        if node.name is not None
    }


@require_GET
@login_required
@ensure_csrf_cookie
def dashboard(request: HttpRequest) -> HttpResponse:
    """The live dashboard. ``ensure_csrf_cookie`` sets the ``csrftoken`` cookie the page's
    GraphQL mutations send back in ``X-CSRFToken``."""
    config = {
        "graphqlPath": "/graphql/",
        "username": request.user.get_username(),
        # Offer the migration preview only to who may migrate (the mutation checks it again).
        "mayMigrate": request.user.has_perm("django_steps.migrate_workflowinstance"),
        "operations": client_operations(),
    }
    return render(request, "demo/dashboard.html", {"config": config})
