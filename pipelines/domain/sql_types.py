"""SQL column types by family, as DuckDB's and PostgreSQL's information_schema name them."""

from __future__ import annotations

# Families of SQL types as information_schema names them in DuckDB and PostgreSQL.
_FAMILIES = {
    "integer": ("BIGINT", "INTEGER", "SMALLINT", "INT", "HUGEINT", "TINYINT"),
    "float": ("DOUBLE", "REAL", "FLOAT", "DECIMAL", "NUMERIC"),
    "text": ("CHAR", "TEXT", "STRING"),
    "boolean": ("BOOL",),
    "date": ("DATE",),
    "timestamp": ("TIMESTAMP",),
}


def type_family(sql_type: str) -> str | None:
    """'integer', 'float', 'text', 'boolean', 'date', 'timestamp' or None, for a catalogue type name."""
    upper = sql_type.upper()
    if upper.startswith("TIMESTAMP"):
        return "timestamp"
    for family, markers in _FAMILIES.items():
        if any(marker in upper for marker in markers):
            return family
    return None
