from django.apps import AppConfig

from . import signals  # noqa: F401  (declares workflow_event_committed)


class DjangoStepsConfig(AppConfig):
    name = "django_steps"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"
