"""The demo settings in production: DEBUG off unless asked, a required secret key, HTTPS behind
one switch, and ``manage.py check --deploy`` clean with the environment the README documents."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: README, "Deployment": the production environment.
PRODUCTION = {
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "steps.example.com",
    "DJANGO_SECURE": "1",
    # several workers share events through Redis (the in-memory layer is django_steps.W014);
    # the check only reads the URL
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    """``manage.py`` in a fresh process whose environment holds only ``env`` (not the tests')."""
    clean = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "demo.settings",
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_production_environment():
    for extra in ({}, {"DJANGO_PROXY_COUNT": "1"}):
        done = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION, **extra)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "System check identified no issues (0 silenced)." in done.stdout


def test_without_the_secure_switch_check_deploy_names_what_is_missing():
    done = manage(
        "check", "--deploy", **{k: v for k, v in PRODUCTION.items() if k != "DJANGO_SECURE"}
    )
    for warning in (
        "security.W004",
        "security.W008",
        "security.W012",
        "security.W016",
    ):  # HSTS, SSL, cookies
        assert warning in done.stderr + done.stdout, warning


def test_check_deploy_names_the_risky_graphql_settings_with_their_fix():
    env = {k: v for k, v in PRODUCTION.items() if k != "REDIS_URL"}
    done = manage(
        "check",
        "--deploy",
        **env,
        GRAPHQL_INTROSPECTION="1",
        GRAPHQL_ALLOWED_ORIGINS="*",
        GRAPHQL_MAX_COST="0",
    )
    output = done.stdout + done.stderr
    for warning in ("W010", "W011", "W012", "W014"):
        assert f"django_steps.{warning}" in output, output
    assert output.count("HINT:") >= 4


def test_outside_debug_a_secret_key_is_required():
    done = manage("check")
    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in done.stderr
    assert "DJANGO_DEBUG=1" in done.stderr


def test_debug_is_off_unless_asked():
    show = [
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings as s; print(s.DEBUG, s.DJANGO_STEPS_GRAPHQL['GRAPHIQL'])",
    ]
    assert manage(*show, **PRODUCTION).stdout.split() == ["False", "False"]
    asked = manage(*show, DJANGO_DEBUG="1")  # what `make demo` sets; no secret key needed then
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.split() == ["True", "True"]
