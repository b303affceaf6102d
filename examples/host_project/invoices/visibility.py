# invoices/visibility.py
"""Which invoices a user may view without invoices.view_invoice (DJANGO_STEPS["VISIBLE_OBJECTS"])."""


def visible_invoices(user, queryset):
    """A customer's own invoices (the invoice names the customer by username)."""
    return queryset.filter(customer=user.get_username())
