from django.db import models


class Invoice(models.Model):
    """An invoice of the host project; django-steps runs its approval workflow."""

    number = models.CharField(max_length=20, unique=True)
    customer = models.CharField(max_length=200)
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.number
