"""Identifiers that come from configuration end up in SQL, so they are checked and quoted.

Only plain names are accepted: a letter or underscore, then letters, digits or
underscores, at most 63 bytes (PostgreSQL's limit; longer names are silently
truncated there). Anything else is refused rather than escaped, because a config
file has no business holding anything else.
"""

from __future__ import annotations

import re

from pipelines.domain.errors import SpecError

MAX_LENGTH = 63
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_identifier(name: object, what: str) -> str:
    """Return `name` if it is a plain SQL name; raise SpecError naming `what` otherwise."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
        raise SpecError(f"{what} must be a plain name (letters, digits, underscores, not starting with a digit); got {name!r}")
    if len(name) > MAX_LENGTH:
        raise SpecError(f"{what} {name!r} is {len(name)} characters; PostgreSQL allows at most {MAX_LENGTH}")
    return name


def quote(name: str) -> str:
    """Double-quote a checked identifier (works in DuckDB and PostgreSQL)."""
    return '"' + check_identifier(name, "identifier") + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"
