from django.apps import AppConfig

from . import signals  # noqa: F401  (declares workflow_event_committed)


class DjangoStepsConfig(AppConfig):
    name = "django_steps"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core import checks

        from .checks import check_migrations_squashed
        from .workitems import check_groups  # it reads models: once the registry is ready

        # They read rows: database checks (manage.py check --database default, and migrate).
        checks.register(check_groups, "django_steps", checks.Tags.database)
        checks.register(check_migrations_squashed, "django_steps", checks.Tags.database)
