"""Identifiers that come from configuration end up in SQL, so they are checked and quoted.

Only plain names are accepted: a letter or underscore, then letters, digits or
underscores, at most 63 characters (PostgreSQL's limit). Anything else is refused
rather than escaped, because a config file has no business holding anything else.
"""

from __future__ import annotations

import re

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def check_identifier(name: object, what: str) -> str:
    """Return `name` if it is a plain SQL name; raise ValueError naming `what` otherwise."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
        raise ValueError(
            f"{what} must be a plain name (letters, digits, underscores, not starting "
            f"with a digit, at most 63 characters); got {name!r}"
        )
    return name


def quote(name: str) -> str:
    """Double-quote a checked identifier (works in DuckDB and PostgreSQL)."""
    return '"' + check_identifier(name, "identifier") + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"
