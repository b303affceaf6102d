"""Login and logout for the ``login``/``logout`` mutations: django-axes throttling (a locked-out
client answered in GraphQL's shape) and the WebSocket variants, which log the socket's session
in and out."""

from __future__ import annotations

from typing import Any

from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest

from graphql_api.security.error_codes import OperationInfoType as OperationInfo
from graphql_api.security.error_codes import TransportCode
from graphql_api.security.errors import ApiError, Kind, to_operation_info


def longest_username() -> int:
    """The longest username an account can have (django-axes stores up to 255 characters)."""
    model = get_user_model()
    return min(model._meta.get_field(model.USERNAME_FIELD).max_length or 255, 255)


def login_refused(request: HttpRequest) -> OperationInfo:
    if getattr(request, "axes_locked_out", False):
        return to_operation_info(locked_out(request))
    return to_operation_info(
        ApiError(
            TransportCode.INVALID_CREDENTIALS,
            "Incorrect username or password.",
            kind=Kind.VALIDATION,
        )
    )


def request_from_scope(scope: dict) -> HttpRequest:
    """An ``HttpRequest`` made from a socket's scope (the client address, the headers), for
    what needs one: django-axes' login and logout records."""
    request = HttpRequest()
    request.method = "POST"
    request.path = request.path_info = scope.get("path", "")
    request.META["REMOTE_ADDR"] = (scope.get("client") or ("",))[0]
    for name, value in scope.get("headers", ()):
        request.META["HTTP_" + name.decode("latin1").upper().replace("-", "_")] = value.decode(
            "latin1"
        )
    return request


def logout_on_socket(scope: dict) -> bool:
    """``logout`` over a WebSocket: the socket's session ends (flushed: deleted from the session
    store, so the cookie is logged out over HTTP too) and the socket is anonymous from its next
    operation on. (strawberry-django's ``resolve_logout`` answered true over a socket and
    logged nothing out.) Django's ``logout`` on a request made from the scope, as for
    ``login``, so django-axes records it like an HTTP logout."""
    user = scope.get("user")
    was_logged_in = bool(getattr(user, "is_authenticated", False))
    session = scope.get("session")
    if session is not None:
        request = request_from_scope(scope)
        request.session = session
        request.user = user if user is not None else AnonymousUser()
        auth.logout(request)  # user_logged_out, then session.flush(): the stored session is deleted
    scope["user"] = AnonymousUser()
    return was_logged_in


def login_on_socket(scope: dict, username: str, password: str) -> Any:
    """``login`` over a WebSocket: throttled like over HTTP, then the socket's session logs in
    (later operations on the socket run as the user).

    django-axes needs an ``HttpRequest`` (the client address, the headers): one is made from
    the socket's scope. (strawberry-django's ``resolve_login`` returned the user over a socket
    without logging the session in.)"""
    request = request_from_scope(scope)
    user = auth.authenticate(request, username=username, password=password)
    if user is None:
        return login_refused(request)
    # Django's login on the socket's session (channels' login signals without a request, which
    # django-axes cannot record)
    request.session = scope["session"]
    auth.login(request, user)
    scope["session"].save()
    scope["user"] = user
    return user


def locked_out(request: Any) -> ApiError:
    """django-axes refused the login (too many failures from this client). It flags the request
    for AxesMiddleware, which would replace the whole response with its 429 page; the mutation
    answers in GraphQL's shape instead, so it clears the flag."""
    from axes.helpers import get_cool_off  # django-axes is optional: only its own refusal gets here

    request.axes_locked_out = False
    cool_off = get_cool_off(request)
    wait = (
        f" Try again in {max(1, round(cool_off.total_seconds() / 60))} minutes." if cool_off else ""
    )
    return ApiError(
        TransportCode.TOO_MANY_ATTEMPTS,
        "Too many failed login attempts." + wait,
        kind=Kind.PERMISSION,
    )
