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
from typing import Any

from pipelines.adapters import registry
from pipelines.adapters.warehouse import Warehouse, catalog, health
from pipelines.config.settings import Settings
from pipelines.config.spec import ModelSpec
from pipelines.domain.records import PinnedModel
from pipelines.domain.reference import usable
from pipelines.monitoring import metrics as m
from pipelines.monitoring import performance
from pipelines.monitoring.drift import score_bins


def compare(
    settings: Settings,
    warehouse: Warehouse,
    spec: ModelSpec,
    as_of_date: dt.date,
    champion: PinnedModel,
    reference: dict[str, Any],
    champion_estimate: dict[str, Any] | None,
) -> list[dict[str, Any]]:
    """The date's shadow_comparison rows, one per shadow version scored on it (the monitor stores them)."""
    rows = []
    bins = [score_bins(reference)]
    predicted = health.histogram(warehouse, catalog.predictions(spec), as_of_date, bins, champion.version).counts["score"]
    for alias, version in health.shadow_versions(warehouse, spec, as_of_date):
        if version == champion.version:  # scoring never shadows the champion; compare nothing with itself either
            continue
        stats = health.shadow_stats(warehouse, spec, as_of_date, champion.version, alias, version, spec.action_threshold)
        if not stats["rows"]:
            continue
        shadowed = health.histogram(warehouse, catalog.shadow(spec), as_of_date, bins, version, alias).counts["score"]
        challenger_reference = registry.training_reference(settings, registry.pin(settings, spec.name, version))
        estimate = (
            performance.estimate(warehouse, spec, challenger_reference, version, as_of_date, alias)
            if usable(challenger_reference)
            else None
        )
        rows.append(
            {
                "challenger_alias": alias,
                "challenger_version": version,
                **_correlations(stats),
                "psi": m.psi(m.shares(predicted), m.shares(shadowed)) if sum(predicted) and sum(shadowed) else None,
                "champion_expected_auc": champion_estimate["expected_auc"] if champion_estimate else None,
                "challenger_expected_auc": estimate["expected_auc"] if estimate else None,
            }
        )
    return rows


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


def realize(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, champion_version: int) -> None:
    """Add the realized AUC of both versions and DeLong's test to the date's comparison rows (labels built)."""
    for alias, version in health.shadow_versions(warehouse, spec, as_of_date):
        pairs = health.shadow_labelled(warehouse, spec, as_of_date, champion_version, alias, version)
        labels = pairs.column("y").to_numpy()
        positives = int(labels.sum())
        realized: dict[str, Any] = {"labelled_rows": len(labels)}
        if positives < 2 or len(labels) - positives < 2:
            realized["delong_null_reason"] = (
                f"realized AUCs and DeLong's test need two positives and two negatives; the labels hold "
                f"{positives} and {len(labels) - positives}"
            )
        else:
            auc_a, auc_b, z, p = m.delong_test(labels, pairs.column("a").to_numpy(), pairs.column("b").to_numpy())
            realized |= {"champion_realized_auc": auc_a, "challenger_realized_auc": auc_b, "delong_z": z, "delong_p_value": p}
            realized["delong_null_reason"] = None
            if not math.isfinite(z):  # zero variance of the paired difference, with unequal AUCs
                realized |= {"delong_z": None, "delong_p_value": None}
                realized["delong_null_reason"] = "DeLong's test: the paired AUC difference has zero variance"
        narrow = {"challenger_alias": alias, "challenger_version": version}
        catalog.update_health(warehouse, catalog.SHADOW_COMPARISON, spec.name, champion_version, as_of_date, realized, narrow)


def unrealize(warehouse: Warehouse, spec: ModelSpec, as_of_date: dt.date, champion_version: int, why: str) -> None:
    """Take back the realized AUCs and DeLong's test of the date's comparison rows (its labels are
    not complete after all): NULL, with `delong_null_reason` saying why."""
    realized = dict.fromkeys(("champion_realized_auc", "challenger_realized_auc", "delong_z", "delong_p_value"))
    catalog.update_health(
        warehouse, catalog.SHADOW_COMPARISON, spec.name, champion_version, as_of_date, {**realized, "delong_null_reason": why}
    )
