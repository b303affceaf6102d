"""Settings of the engine: ``settings.DJANGO_STEPS`` (a dict), read at call time.

Every key has a default here; the README's "Configuration" section lists them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

__all__ = ["DEFAULTS", "steps_setting"]

DEFAULTS: dict[str, Any] = {
    # The visibility rule: a callable (user, queryset) -> queryset, or its dotted path; None keeps
    # every instance (for users with django_steps.view_workflowinstance). See authorization.py.
    "VISIBLE_INSTANCES": None,
}


def steps_setting(name: str) -> Any:
    """A key of ``settings.DJANGO_STEPS`` (its default when unset)."""
    if name not in DEFAULTS:
        raise KeyError(f"Unknown django-steps setting {name!r}")
    return (getattr(settings, "DJANGO_STEPS", None) or {}).get(name, DEFAULTS[name])
