"""Models of every primary-key and field type the engine must handle."""

import uuid

from django.db import models


class Document(models.Model):
    """Integer primary key, with one field of every type CEL conditions read."""

    title = models.CharField(max_length=100, default="doc")
    amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    ratio = models.FloatField(default=0.0)
    count = models.IntegerField(default=0)
    due = models.DateField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    reference = models.UUIDField(default=uuid.uuid4)
    urgent = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.title


class UUIDThing(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=50, default="thing")

    def __str__(self) -> str:
        return self.name


class CodeThing(models.Model):
    code = models.CharField(max_length=40, primary_key=True)

    def __str__(self) -> str:
        return self.code
