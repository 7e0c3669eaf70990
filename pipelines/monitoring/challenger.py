"""Champion/challenger: how a shadow version's scores compare with the champion's, per date.

Shadow versions (`shadow_aliases` in model.yaml) score the same validated partition as
the champion, in the same read (`pipelines.scoring.score`), into `predictions.<model>_shadow_scores`.
For each date and (champion version, shadow version), `monitoring.shadow_comparison`
holds: rows, Pearson and Spearman correlation, mean and 95th-percentile absolute
difference, the Jaccard overlap of the two top deciles, the share of rows whose decision
flips at the action threshold, the PSI between the two score distributions, the
estimated (CBPE) AUC of each, and, once labels land, the realized AUC of each with
DeLong's paired test of the difference (DeLong, DeLong & Clarke-Pearson 1988).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pipelines.adapters.warehouse import Warehouse, health, tables
from pipelines.config.spec import ModelSpec
from pipelines.domain.records import PinnedModel
from pipelines.domain.reference import TrainingReference
from pipelines.monitoring import metrics as m
from pipelines.monitoring import performance
from pipelines.monitoring.drift import score_bins

if TYPE_CHECKING:
    from pipelines.adapters.resources import Resources

# The columns a date's realized comparison fills in, and a withdrawal sets back to NULL.
REALIZED_COLUMNS = ("champion_realized_auc", "challenger_realized_auc", "delong_z", "delong_p_value")


@dataclass(frozen=True)
class ShadowComparison:
    """How a shadow version's scores of a date compare with the champion's (a row of
    monitoring.shadow_comparison, before labels land). A correlation that is undefined is
    None, with `null_reason` saying why."""

    challenger_alias: str
    challenger_version: int
    rows: int
    pearson: float | None
    spearman: float | None
    mean_abs_difference: float | None
    p95_abs_difference: float | None
    top_decile_jaccard: float | None
    flip_share: float | None
    null_reason: str | None
    psi: float | None
    champion_expected_auc: float | None
    challenger_expected_auc: float | None

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RealizedComparison:
    """The realized AUC of both versions on a labelled date, and DeLong's paired test of the
    difference: what a shadow_comparison row gains once labels land. Without two positives and
    two negatives (`tested` False) there is no AUC to compare, and `delong_null_reason` says so."""

    challenger_alias: str
    challenger_version: int
    labelled_rows: int
    tested: bool
    delong_null_reason: str | None
    champion_realized_auc: float | None = None
    challenger_realized_auc: float | None = None
    delong_z: float | None = None
    delong_p_value: float | None = None

    @property
    def key(self) -> dict[str, Any]:
        """The comparison row it completes (besides model, champion version and date)."""
        return {"challenger_alias": self.challenger_alias, "challenger_version": self.challenger_version}

    def values(self) -> dict[str, Any]:
        """The columns it sets; an untested one leaves the AUC and test columns as they are."""
        values = {"labelled_rows": self.labelled_rows, "delong_null_reason": self.delong_null_reason}
        if self.tested:
            values |= {column: getattr(self, column) for column in REALIZED_COLUMNS}
        return values


def compare(
    res: Resources,
    spec: ModelSpec,
    as_of_date: dt.date,
    champion: PinnedModel,
    reference: TrainingReference,
    champion_estimate: performance.Estimate | None,
) -> list[ShadowComparison]:
    """The date's comparisons, one per shadow version scored on it (the monitor stores them)."""
    warehouse = res.warehouse
    found = []
    bins = [score_bins(reference)]
    predicted = health.histogram(warehouse, tables.predictions(spec), as_of_date, bins, champion.version).counts["score"]
    for alias, version in health.shadow_versions(warehouse, spec, as_of_date):
        if version == champion.version:  # scoring never shadows the champion; compare nothing with itself either
            continue
        stats = health.shadow_stats(warehouse, spec, as_of_date, champion.version, alias, version, spec.action_threshold)
        if not stats["rows"]:
            continue
        shadowed = health.histogram(warehouse, tables.shadow(spec), as_of_date, bins, version, alias).counts["score"]
        challenger_reference = res.registry.training_reference(res.registry.pin(spec.name, version))
        estimate = (
            performance.estimate(warehouse, spec, challenger_reference, version, as_of_date, alias)
            if challenger_reference is not None
            else None
        )
        found.append(
            ShadowComparison(
                challenger_alias=alias,
                challenger_version=version,
                **_correlations(stats),
                psi=m.psi(m.shares(predicted), m.shares(shadowed)) if sum(predicted) and sum(shadowed) else None,
                champion_expected_auc=champion_estimate.expected_auc if champion_estimate else None,
                challenger_expected_auc=estimate.expected_auc if estimate else None,
            )
        )
    return found


def _correlations(stats: dict[str, Any]) -> dict[str, Any]:
    """The statistics with Pearson and Spearman NULL where they are undefined (fewer than two
    rows, or a side whose scores are all one value: a correlation divides by its spread),
    and `null_reason` saying why."""
    stats = dict(stats)
    champion_range, challenger_range = stats.pop("champion_range"), stats.pop("challenger_range")
    constant = [who for who, spread in (("champion", champion_range), ("challenger", challenger_range)) if not spread]
    if stats["rows"] < 2:
        reason = f"pearson, spearman: undefined for {stats['rows']} row"
    elif constant:
        reason = f"pearson, spearman: undefined, the {' and the '.join(constant)} scores are all one value"
    else:
        reason = None
    for name in ("pearson", "spearman"):
        value = stats[name]
        if reason or value is None or not math.isfinite(value):
            stats[name] = None
            reason = reason or f"{name}: undefined"
    return {**stats, "null_reason": reason}


def compare_realized(
    warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, champion_version: int
) -> list[RealizedComparison]:
    """The realized AUC of both versions and DeLong's test, for each shadow version scored on a
    date whose labels are built (the realize step stores them in the date's comparison rows)."""
    found = []
    reason: str | None
    z_test: float | None
    p_test: float | None
    for alias, version in health.shadow_versions(warehouse, spec, as_of_date):
        pairs = health.shadow_labelled(warehouse, spec, as_of_date, champion_version, alias, version)
        labels = pairs.column("y").to_numpy()
        positives = int(labels.sum())
        if positives < 2 or len(labels) - positives < 2:
            reason = (
                f"realized AUCs and DeLong's test need two positives and two negatives; the labels hold "
                f"{positives} and {len(labels) - positives}"
            )
            found.append(RealizedComparison(alias, version, len(labels), tested=False, delong_null_reason=reason))
            continue
        auc_a, auc_b, z, p = m.delong_test(labels, pairs.column("a").to_numpy(), pairs.column("b").to_numpy())
        if math.isfinite(z):
            z_test, p_test, reason = z, p, None
        else:  # zero variance of the paired difference, with unequal AUCs
            z_test, p_test, reason = None, None, "DeLong's test: the paired AUC difference has zero variance"
        found.append(RealizedComparison(alias, version, len(labels), True, reason, auc_a, auc_b, z_test, p_test))
    return found
