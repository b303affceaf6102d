# mysite/urls.py
from django.contrib import admin
from django.urls import include, path

from graphql_api.urls import graphql_urls

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include(graphql_urls("mysite.schema:schema"))),  # /graphql/, with your schema
]
