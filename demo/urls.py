from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.views import serve as serve_static
from django.urls import include, path, re_path

from . import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="demo/login.html", redirect_authenticated_user=True, next_page="dashboard"
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("admin/", admin.site.urls),
    # `make demo` serves with daphne, which (unlike runserver) serves no static files: the demo
    # serves them itself from the app directories (the dashboard's, mermaid, the admin CSS, and
    # GraphiQL and graphql-ws from graphql_api). A deployment runs `collectstatic` and lets the
    # proxy or WhiteNoise do it.
    re_path(r"^static/(?P<path>.*)$", serve_static, {"insecure": True}),
    path("", include("graphql_api.urls")),
]
