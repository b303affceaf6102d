# invoices/visibility.py
"""Which workflow instances a user sees (settings.DJANGO_STEPS["VISIBLE_INSTANCES"])."""

from django.contrib.contenttypes.models import ContentType

from .models import Invoice


def visible_instances(user, queryset):
    """Instances on invoices only for users who may view invoices; other models' unchanged."""
    if user.has_perm("invoices.view_invoice"):
        return queryset
    return queryset.exclude(content_type=ContentType.objects.get_for_model(Invoice))
