"""Who may see what and what a request may cost: permissions, the cost limit,
document limits and masking (extensions), errors and their codes, system checks."""
