"""The demo's dashboard page: a Django view that serves an HTML shell; the data comes from
the GraphQL API (queries and mutations over HTTP, live events over the WebSocket)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.contenttypes.models import ContentType
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET
from graphql import parse

from django_steps.authorization import may_view_object, visible_instances
from django_steps.models import WorkflowInstance
from graphql_api.security.persisted import operation_texts

#: Most labels one request may ask for.
MAX_LABELS = 200

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
        "labelsUrl": reverse("dashboard-labels"),
        "username": request.user.get_username(),
        "operations": client_operations(),
    }
    return render(request, "demo/dashboard.html", {"config": config})


@require_GET
@login_required
def object_labels(request: HttpRequest) -> JsonResponse:
    """Human-readable names of the objects instances are attached to.

    ``?ref=claims.claim:3&ref=...`` (the instance's ``contentType`` and ``objectId``) returns
    ``{"labels": {"claims.claim:3": "Broken window (450.00)"}}``. The GraphQL API deliberately
    knows nothing about the attached models, so the demo page asks its own project. Only
    objects carrying an instance the user may see (the visibility rule, as in GraphQL) that the
    user may view are named; anything else (another model, someone else's object, a missing
    one) is left out, the same way.
    """
    wanted: dict[tuple[str, str], list[str]] = {}
    for ref in request.GET.getlist("ref")[:MAX_LABELS]:
        label, sep, object_id = ref.rpartition(":")
        app_label, dot, model_name = label.partition(".")
        if sep and dot and object_id:
            wanted.setdefault((app_label, model_name.lower()), []).append(object_id)

    labels: dict[str, str] = {}
    for (app_label, model_name), ids in wanted.items():
        try:
            content_type = ContentType.objects.get_by_natural_key(app_label, model_name)
        except ContentType.DoesNotExist:
            continue
        model = content_type.model_class()
        if model is None:
            continue
        attached = visible_instances(
            request.user,
            WorkflowInstance.objects.filter(content_type=content_type, object_id__in=ids),
        ).values_list("object_id", flat=True)
        keys = set()
        for object_id in attached:
            try:
                keys.add(model._meta.pk.to_python(object_id))
            except Exception:  # a malformed id names no object
                continue
        for obj in model._default_manager.filter(pk__in=keys):
            if may_view_object(request.user, obj):
                labels[f"{app_label}.{model._meta.model_name}:{obj.pk}"] = str(obj)
    return JsonResponse({"labels": labels})
