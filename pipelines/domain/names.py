"""How batchpred names what it owns: the tables derived from a model's name, and the
scratch schema of a dry run. Pure names, no database: the spec checks a model name
against them when it loads, and the warehouse catalog builds its tables from them."""

from __future__ import annotations

from pipelines.domain.errors import SpecError
from pipelines.domain.identifiers import MAX_LENGTH, check_identifier

# Per-model tables: (schema, name suffix after the model name, grain).
PER_MODEL = {
    "predictions": ("predictions", "_scores", "one row per entity per as_of_date"),
    "staging": ("analytics", "_scores_staging", "one row per entity per as_of_date per scoring run, until published"),
    "quarantine": ("monitoring", "_quarantine", "one row per entity per as_of_date that broke a tolerated expectation"),
    "shadow": ("predictions", "_shadow_scores", "one row per entity per as_of_date per shadow alias (never the truth)"),
    "shadow_staging": ("analytics", "_shadow_staging", "shadow scores per scoring run and shard, until published"),
    "reasons": ("predictions", "_reasons", "the top-k reasons per entity per as_of_date: one row per reason"),
    "reasons_staging": ("analytics", "_reasons_staging", "reasons per scoring run and shard, until published"),
    "profile_staging": (
        "analytics",
        "_profile_staging",
        "one row per bin per feature (and the score) per scoring run and shard: the shard's drift profile, until published",
    ),
}
MARTS = ("_latest_scores", "_daily_summary")  # marts.<model><suffix>
SCRATCH_PREFIX = "batchpred_dry_run_"


def check_model_name(name: str) -> None:
    """Refuse (SpecError) a model name that would make a derived table name too long for PostgreSQL."""
    longest = max(len(suffix) for _, suffix, _ in PER_MODEL.values())
    longest = max(longest, *(len(suffix) for suffix in MARTS))
    if len(name) + longest > MAX_LENGTH:
        too_long = [f"{schema}.{name}{suffix}" for schema, suffix, _ in PER_MODEL.values() if len(name + suffix) > MAX_LENGTH]
        raise SpecError(
            f"name {name!r} is {len(name)} characters: batchpred derives table names from it ({', '.join(too_long)}), "
            f"and PostgreSQL allows {MAX_LENGTH}; use at most {MAX_LENGTH - longest} characters"
        )


def scratch_schema(run_id: str) -> str:
    return check_identifier(SCRATCH_PREFIX + run_id.replace("-", "")[:16], "scratch schema")
