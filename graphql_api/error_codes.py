"""Moved to :mod:`graphql_api.security.error_codes`; this name keeps working."""

from graphql_api.security.error_codes import *  # noqa: F403

if __name__ == "__main__":  # pragma: no cover - python -m graphql_api.error_codes
    from graphql_api.security.error_codes import markdown_table

    print(markdown_table(), end="")
