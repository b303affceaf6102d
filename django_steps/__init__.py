"""django-steps: data-defined workflows with CEL-guarded transitions."""
