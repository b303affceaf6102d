from django.urls import path
from graphene_django.views import GraphQLView

from bench._peer_floor import update_workflow_step_status

# Not csrf_exempt: the CSRF middleware checks every POST, as ours does.
urlpatterns = [
    path("graphql/", GraphQLView.as_view()),
    path("floor/update-status/", update_workflow_step_status),
]
