from django.apps import AppConfig


class DjangoStepsConfig(AppConfig):
    name = "django_steps"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from . import signals  # noqa: F401  (declares workflow_event_committed)
        from .workitems import check_groups

        # It reads rows: a database check (manage.py check --database default, and migrate).
        checks.register(check_groups, "django_steps", checks.Tags.database)
