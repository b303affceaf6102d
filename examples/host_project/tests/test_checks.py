"""django-steps' system checks pass for the project as the README sets it up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def test_manage_py_check_is_clean():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mysite.settings"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout, (
        result.stdout + result.stderr
    )


def test_our_checks_are_registered_and_run(settings):
    """Not vacuous: the same project without a channel layer is told about it."""
    from django.core.checks import run_checks

    assert run_checks(tags=["django_steps"]) == []
    del settings.CHANNEL_LAYERS
    assert [m.id for m in run_checks(tags=["django_steps"])] == ["django_steps.W001"]
