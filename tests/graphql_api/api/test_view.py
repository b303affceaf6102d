"""The HTTP endpoint outside GraphQL execution: refusals in GraphQL's JSON error shape (CSRF,
bad requests, methods, a plain GET with GraphiQL off) and GraphiQL served from the package."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from tests.graphql_api import operations as ops
from tests.graphql_api.conftest import ENDPOINT, GQL, make_user

pytestmark = pytest.mark.django_db

QUERY = json.dumps({"query": "{ me { username } }"})


def graphql_error(response, status: int) -> dict:
    """The single error of a refusal, checked to be GraphQL's JSON shape with ``status``."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"errors"} and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert error["message"] and set(error["extensions"]) == {"code"}
    return error


# --------------------------------------------------------------------------------------- CSRF


def test_a_post_without_csrf_cookie_is_a_json_403_and_gets_a_cookie_to_retry(viewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    refused = client.post(ENDPOINT, QUERY, content_type="application/json")
    error = graphql_error(refused, 403)
    assert error["extensions"]["code"] == "CSRF_FAILED"
    assert "csrftoken" in error["message"]
    token = refused.cookies["csrftoken"].value
    retried = client.post(ENDPOINT, QUERY, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert retried.status_code == 200 and retried.json()["data"]["me"]["username"] == "viewer"


def test_an_accepted_post_sends_the_same_csrf_cookie_again(viewer, settings):
    """As Django's ``ensure_csrf_cookie``: each answer renews the cookie's expiry, and keeps its
    value (a token the client holds stays valid)."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    token = client.get(ENDPOINT, HTTP_ACCEPT="application/json").cookies["csrftoken"].value
    for _ in range(2):
        answered = client.post(
            ENDPOINT, QUERY, content_type="application/json", HTTP_X_CSRFTOKEN=token
        )
        assert answered.status_code == 200 and "errors" not in answered.json()
        assert answered.cookies["csrftoken"].value == token
        assert answered.cookies["csrftoken"]["max-age"] == settings.CSRF_COOKIE_AGE


@pytest.mark.parametrize("header", [None, "x" * 32, "a" * 5])
def test_missing_or_wrong_csrf_token_is_a_json_403(viewer, header):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    client.get(ENDPOINT, HTTP_ACCEPT="application/json")
    extra = {} if header is None else {"HTTP_X_CSRFTOKEN": header}
    error = graphql_error(
        client.post(ENDPOINT, QUERY, content_type="application/json", **extra), 403
    )
    assert error["extensions"]["code"] == "CSRF_FAILED"
    assert "X-CSRFToken" in error["message"]


def test_an_untrusted_origin_is_refused_without_echoing_it(viewer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    client.get(ENDPOINT, HTTP_ACCEPT="application/json")
    token = client.cookies["csrftoken"].value
    response = client.post(
        ENDPOINT,
        QUERY,
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="https://evil.example",
    )
    error = graphql_error(response, 403)
    assert error["extensions"]["code"] == "CSRF_FAILED"
    assert "evil" not in response.content.decode()


def test_csrf_is_checked_even_without_the_projects_csrf_middleware(viewer, settings):
    settings.MIDDLEWARE = [
        m for m in settings.MIDDLEWARE if m != "django.middleware.csrf.CsrfViewMiddleware"
    ]
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    assert graphql_error(client.post(ENDPOINT, QUERY, content_type="application/json"), 403)[
        "extensions"
    ] == {"code": "CSRF_FAILED"}
    client.get(ENDPOINT, HTTP_ACCEPT="application/json")  # still sets the cookie
    ok = client.post(
        ENDPOINT,
        QUERY,
        content_type="application/json",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert ok.json()["data"]["me"]["username"] == "viewer"


def test_anonymous_clients_reach_login_behind_login_required_middleware(db, settings):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    make_user("ada")
    client = Client(enforce_csrf_checks=True)
    assert client.get("/admin/").status_code == 302  # the middleware is active
    first = client.get(ENDPOINT, HTTP_ACCEPT="application/json")
    assert first.status_code == 400 and first["Content-Type"] == "application/json"
    result = GQL(client)(
        ops.LOGIN,
        {"username": "ada", "password": "pw"},
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert result["data"]["login"]["username"] == "ada"


def test_csrf_cookie_from_get_and_header_on_post(viewer, claim_workflow):
    client = Client(enforce_csrf_checks=True)
    client.force_login(viewer)
    body = json.dumps({"query": "{ workflows { totalCount } }"})

    refused = client.post(ENDPOINT, body, content_type="application/json")
    assert refused.status_code == 403

    client.get(ENDPOINT, HTTP_ACCEPT="application/json")
    token = client.cookies["csrftoken"].value
    assert token

    wrong = client.post(
        ENDPOINT, body, content_type="application/json", HTTP_X_CSRFTOKEN="nope" * 8
    )
    assert wrong.status_code == 403
    ok = client.post(ENDPOINT, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200 and ok.json()["data"]["workflows"]["totalCount"] == 1


def test_login_over_csrf_then_use_the_rotated_token(db):
    make_user("ada", "django_steps.view_workflow")
    client = Client(enforce_csrf_checks=True)
    client.get(ENDPOINT, HTTP_ACCEPT="application/json")
    gql = GQL(client)
    response = gql.post(
        ops.LOGIN,
        {"username": "ada", "password": "pw"},
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert response.json()["data"]["login"]["username"] == "ada"
    # login rotated the token: the new cookie works, the session is the user's
    response = gql.post(ops.ME, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert response.status_code == 200 and response.json()["data"]["me"]["username"] == "ada"


# ------------------------------------------------------------------------------ bad requests


def test_plain_get_with_graphiql_off_answers_json_and_sets_the_cookie(client, settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "GRAPHIQL": False}
    for accept in ("text/html", "*/*", "application/json"):
        response = client.get(ENDPOINT, HTTP_ACCEPT=accept)
        assert graphql_error(response, 400)["extensions"]["code"] == "BAD_REQUEST"
        assert "csrftoken" in response.cookies


@pytest.mark.parametrize(
    "body, content_type",
    [
        ("{not json", "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        ("query=x", "text/plain"),
        (json.dumps({"query": 42}), "application/json"),
        (json.dumps({}), "application/json"),
    ],
)
def test_malformed_requests_are_json_400(as_viewer, body, content_type):
    response = as_viewer.client.post(ENDPOINT, body, content_type=content_type)
    assert graphql_error(response, 400)["extensions"]["code"] == "BAD_REQUEST"


def test_other_methods_are_json_405(as_viewer):
    response = as_viewer.client.put(ENDPOINT, QUERY, content_type="application/json")
    assert graphql_error(response, 405)["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert response["Allow"] == "GET, POST"


def test_a_mutation_over_get_is_a_json_400(as_viewer):
    response = as_viewer.client.get(ENDPOINT, {"query": "mutation { logout }"})
    assert graphql_error(response, 400)["extensions"]["code"] == "BAD_REQUEST"


# ---------------------------------------------------------------------------------- GraphiQL


class _Urls(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in {"src", "href", "action", "data", "poster", "srcset"} and value:
                self.urls.append((tag, value))


def urls_leaving_the_site(html: str) -> list[str]:
    parser = _Urls()
    parser.feed(html)
    leaving = []
    for _tag, url in parser.urls:
        parts = urlsplit(url.strip())
        if parts.scheme == "data":
            continue
        if parts.scheme or parts.netloc:
            leaving.append(url)
    # Inline scripts and styles: anything that fetches or imports an absolute URL.
    for script in re.findall(r"<(?:script|style)[^>]*>(.*?)</(?:script|style)>", html, flags=re.S):
        leaving += re.findall(r"(?:fetch|import|url)\(\s*['\"]?((?:https?:)?//[^'\")\s]+)", script)
    return leaving


def graphiql_page(client) -> str:
    response = client.get(ENDPOINT, HTTP_ACCEPT="text/html")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/html")
    return response.content.decode()


def test_graphiql_switch(client, settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "GRAPHIQL": True}
    page = client.get(ENDPOINT, HTTP_ACCEPT="text/html")
    assert page.status_code == 200 and b"graphiql" in page.content.lower()
    assert "csrftoken" in page.cookies
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "GRAPHIQL": False}
    off = client.get(
        ENDPOINT, HTTP_ACCEPT="text/html"
    )  # JSON, not a 404 page (tests/graphql_api/api/test_view.py)
    assert off.status_code == 400 and off.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_graphiql_follows_debug_unless_set(client, settings):
    settings.DJANGO_STEPS_GRAPHQL = {
        k: v
        for k, v in settings.DJANGO_STEPS_GRAPHQL.items()
        if k not in ("GRAPHIQL", "INTROSPECTION")
    }
    settings.DEBUG = True
    assert "GraphiQL" in graphiql_page(client)
    assert "__schema" in json.dumps(
        client.get(ENDPOINT, {"query": "{ __schema { queryType { name } } }"}).json()
    )
    settings.DEBUG = False
    assert graphql_error(client.get(ENDPOINT, HTTP_ACCEPT="text/html"), 400)
    refused = client.get(ENDPOINT, {"query": "{ __schema { queryType { name } } }"}).json()
    assert (
        refused.get("data") is None and "introspection" in refused["errors"][0]["message"].lower()
    )


def test_graphiql_loads_only_package_files_matching_strawberrys_integrity_hashes(client, settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "GRAPHIQL": True}
    html = graphiql_page(client)
    assert urls_leaving_the_site(html) == []
    assets = re.findall(r'(?:src|href)="/static/([^"]+)"\s+integrity="sha384-([^"]+)"', html)
    assert len(assets) == 6, assets
    for path, expected in assets:
        assert path.startswith("graphql_api/vendor/graphiql/")
        found = finders.find(path)
        assert found and "/graphql_api/static/" in found, path  # from the package, not the demo
        digest = base64.b64encode(hashlib.sha384(open(found, "rb").read()).digest()).decode()
        assert digest == expected, path
        # The stylesheets load nothing from elsewhere either (fonts are data: URLs).
        if path.endswith(".css"):
            assert not re.findall(
                r"url\(\s*['\"]?(?:https?:)?//", open(found, encoding="utf-8").read()
            )


def test_graphiql_sends_the_projects_csrf_header_from_its_cookie(client, settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "GRAPHIQL": True}
    settings.CSRF_COOKIE_NAME = "host_csrf"
    settings.CSRF_HEADER_NAME = "HTTP_X_HOST_CSRF"
    response = client.get(ENDPOINT, HTTP_ACCEPT="text/html")
    html = response.content.decode()

    def constant(name: str) -> str:  # a JS string literal of the page (escapejs: \uXXXX escapes)
        return json.loads('"' + re.search(rf'const {name} = "([^"]*)";', html).group(1) + '"')

    assert constant("CSRF_COOKIE") == "host_csrf"
    assert constant("CSRF_HEADER") == "X-Host-Csrf"
    assert "host_csrf" in response.cookies
    page_token = constant("PAGE_TOKEN")
    ok = client.post(ENDPOINT, QUERY, content_type="application/json", HTTP_X_HOST_CSRF=page_token)
    assert ok.status_code == 200


def test_graphiql_renders_whatever_the_projects_templates(client, settings):
    settings.DJANGO_STEPS_GRAPHQL = {**settings.DJANGO_STEPS_GRAPHQL, "GRAPHIQL": True}
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": False,
            "OPTIONS": {},
        }
    ]
    assert "graphql_api/vendor/graphiql/graphiql-3.8.3.min.js" in graphiql_page(client)
