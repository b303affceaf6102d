"""The floor of ``bench/mutations.py``: a plain Django JSON view doing the mutation's work
(:func:`bench._peer_work.update_status`) behind the same middleware (sessions, CSRF — the view is
not exempt —, auth, django-axes…), answering the same JSON as the GraphQL endpoints. Its body is
the GraphQL request's: ``{"variables": {"input": {...}}}`` (the query text is not read)."""

from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST

from bench._peer_work import update_status


@require_POST
def update_workflow_step_status(request: HttpRequest) -> JsonResponse:
    data = json.loads(request.body)["variables"]["input"]
    result = update_status(
        request.user, data["instanceId"], data["statusName"], data.get("expectedVersion")
    )
    if not isinstance(result, dict):
        result = {"__typename": "WorkflowInstance", "version": result.version}
    return JsonResponse({"data": {"updateWorkflowStepStatus": result}})
