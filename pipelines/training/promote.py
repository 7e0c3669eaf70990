"""`batchpred promote`: move an alias to a version the governed way.

The version's shadow record (`monitoring.shadow_comparison`: the dates it scored beside
the champion, their estimated and realized AUC) decides: a version with no shadow
history, or whose realized AUC is below the champion's on the dates both were
labelled, is refused unless `force`. Every promotion needs a reason, and is recorded
with who and when in `monitoring.promotions` and as tags on the MLflow version.
Afterwards, `batchpred backfill MODEL --only stale` rescores the history the previous
version scored.

A shadow alias left at the version that became the champion (the usual case: @challenger
won) is left where it is, not moved or deleted: scoring no longer shadow-scores it, as it
would compare the champion with itself, and says so. `shadows_at` names such aliases;
the promotion's evidence records them, and the CLI says how to get a new challenger.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from pipelines.adapters.registry import check_alias
from pipelines.adapters.resources import Resources, current_user
from pipelines.adapters.warehouse import health
from pipelines.config.spec import ModelSpec
from pipelines.domain.errors import InputError, ModelNotFound
from pipelines.domain.records import PinnedModel


@dataclass(frozen=True)
class Record:
    """A version's shadow record against the champions it shadowed."""

    dates: list[dt.date]
    labelled_dates: list[dt.date]
    estimated_difference: float | None  # mean over dates of challenger - champion estimated AUC
    realized_difference: float | None  # mean over labelled dates of challenger - champion realized AUC
    rows: list[dict[str, Any]] = field(default_factory=list)

    def describe(self) -> str:
        if not self.dates:
            return "no shadow history"
        parts = [f"shadow-scored {len(self.dates)} date(s), {self.dates[0]}..{self.dates[-1]}"]
        if self.estimated_difference is not None:
            parts.append(f"estimated AUC {self.estimated_difference:+.4f} against the champion on average")
        if self.realized_difference is not None:
            parts.append(f"realized AUC {self.realized_difference:+.4f} on {len(self.labelled_dates)} labelled date(s)")
        else:
            parts.append("no labelled date yet")
        return "; ".join(parts)


def shadow_record(res: Resources, spec: ModelSpec, version: int) -> Record:
    rows = health.shadow_history(res.warehouse, spec.name, version).to_pylist()

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    estimated = [
        r["challenger_expected_auc"] - r["champion_expected_auc"]
        for r in rows
        if r["challenger_expected_auc"] is not None and r["champion_expected_auc"] is not None
    ]
    labelled = [r for r in rows if r["challenger_realized_auc"] is not None and r["champion_realized_auc"] is not None]
    return Record(
        sorted({r["as_of_date"] for r in rows}),
        sorted({r["as_of_date"] for r in labelled}),
        mean(estimated),
        mean([r["challenger_realized_auc"] - r["champion_realized_auc"] for r in labelled]),
        rows,
    )


def promote(
    res: Resources, spec: ModelSpec, alias: str, version: int, reason: str | None, force: bool = False
) -> tuple[PinnedModel | None, PinnedModel, Record]:
    """Point models:/<model>@<alias> at `version`; returns (the version it pointed at before, the
    new one, the shadow record). Refuses (InputError) without a reason, a version with no
    shadow history or a worse realized AUC (unless `force`), and a no-op."""
    alias = check_alias(alias)
    if not (reason and reason.strip()):
        raise InputError("promote needs --reason: why this version should take the alias (it is recorded)")
    target = res.registry.pin(spec.name, version)
    res.registry.contract(target).check_spec(spec, target.uri)
    try:
        current = res.registry.resolve(spec.name, alias)
    except ModelNotFound:
        current = None
    if current is not None and current.version == version:
        raise InputError(f"models:/{spec.name}@{alias} is already version {version}")
    record = shadow_record(res, spec, version)
    if not force:
        if not record.dates:
            raise InputError(
                f"version {version} has no shadow history: point a shadow alias at it (batchpred train {spec.name} "
                f"--alias challenger, or the registry) and let it score beside the champion first, or pass --force"
            )
        if record.realized_difference is not None and record.realized_difference < 0:
            raise InputError(
                f"version {version}'s realized AUC is {record.realized_difference:+.4f} against the champion on "
                f"{len(record.labelled_dates)} labelled date(s); pass --force to promote it anyway"
            )
    user, now = current_user(), res.now()
    res.registry.set_alias(target, alias)
    res.registry.tag_version(
        target,
        {
            f"promoted_to_{alias}_at": now.isoformat(timespec="seconds"),
            f"promoted_to_{alias}_by": user,
            f"promoted_to_{alias}_reason": reason.strip()[:4000],
            f"promoted_to_{alias}_forced": str(force).lower(),
            f"promoted_to_{alias}_from": str(current.version) if current else "none",
        },
    )
    health.record_promotion(
        res.warehouse,
        {
            "model_name": spec.name,
            "alias": alias,
            "from_version": current.version if current else None,
            "to_version": version,
            "reason": reason.strip(),
            "forced": force,
            "evidence": json.dumps(
                {
                    "shadow_dates": len(record.dates),
                    "labelled_dates": len(record.labelled_dates),
                    "estimated_auc_difference": record.estimated_difference,
                    "realized_auc_difference": record.realized_difference,
                    "shadow_aliases_now_champion": shadows_at(res, spec, version) if alias == spec.alias else [],
                }
            ),
            "promoted_by": user,
            "promoted_at": now,
        },
    )
    return current, PinnedModel(target.name, target.version, target.run_id, alias), record


def shadows_at(res: Resources, spec: ModelSpec, version: int) -> list[str]:
    """The spec's shadow aliases that point at `version` (after a promotion: shadows that are
    now the champion, and so are no longer shadow-scored)."""
    found = []
    for alias in spec.shadow_aliases:
        try:
            if res.registry.resolve(spec.name, alias).version == version:
                found.append(alias)
        except ModelNotFound:
            continue
    return found
