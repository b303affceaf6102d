from django.urls import path
from graphene_django.views import GraphQLView

# Not csrf_exempt: the CSRF middleware checks every POST, as ours does.
urlpatterns = [path("graphql/", GraphQLView.as_view())]
