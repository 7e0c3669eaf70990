"""A date's drift profile, counted by the scorer as it scores and published with the predictions,
is the warehouse's to the row: the same counts in every bin as `health.histogram` gives over
the same rows (values on a cut, ±inf, NULL, NaN, doubles beyond float32, unseen categories,
integers, quarantined rows, the champion's scores beside a shadow's), one or two shards, on
both warehouses. Monitoring reads it instead of scanning, bins from the warehouse a date whose
stored profile does not describe its predictions, and a re-score replaces it, an unpublish
removes it. The means are sums of float64 in another order: equal to a relative 1e-12."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import resources

from pipelines.adapters.warehouse import health, tables
from pipelines.domain.status import HealthStatus
from pipelines.monitoring import drift
from pipelines.monitoring.monitor import monitor_date
from pipelines.usecases import health as model_health
from pipelines.usecases import models
from pipelines.usecases.unpublish import unpublish
from tests.conftest import AS_OF, score_date

RELAXED = {"plan", "region", "channel", "sessions_trend", "tenure_days"}  # columns the edges go in


def relaxed(spec, tmp_path, shards: int = 1):
    """The spec with `shards`, and its suite without the rules on RELAXED (so unseen categories,
    NULL, ±inf and NaN are scored, not refused); minutes_30d's tolerated range rule (mostly
    0.99) stays, so the rows broken there are quarantined."""
    suite = json.loads(spec.suite_path.read_text())
    suite["expectations"] = [e for e in suite["expectations"] if e["kwargs"].get("column") not in RELAXED]
    (tmp_path / f"{spec.suite}.json").write_text(json.dumps(suite))
    return replace(spec, suites_dir=tmp_path, shards=shards, shadow_aliases=())


def customers(warehouse, n: int) -> list[int]:
    return [
        r["customer_id"]
        for r in warehouse.query(
            "select customer_id from analytics.churn_features where as_of_date = $1 order by customer_id limit $2", [AS_OF, n]
        ).to_pylist()
    ]


def set_value(warehouse, column: str, customer: int, value: str | None, cast: str = "double precision") -> None:
    warehouse.execute(
        f"update analytics.churn_features set {column} = cast($1 as {cast}) where as_of_date = $2 and customer_id = $3",
        [value, AS_OF, customer],
    )


def plant_edges(warehouse, reference) -> dict[str, int]:
    """Put every edge in the date's features; returns how many rows minutes_30d's infinite bin
    and the quarantine must hold (the model refuses an infinity, so infinities are in rows
    validation quarantines: minutes_30d's range rule tolerates 1%)."""
    cut = reference.features["sessions_trend"].cuts[len(reference.features["sessions_trend"].cuts) // 2]
    below = float(np.nextafter(np.float32(cut), np.float32(-np.inf)))
    halfway = (below + cut) / 2  # rounds to float32 `cut` or `below`, ties to even, as the model reads it
    near = [cut, below, halfway, np.nextafter(halfway, np.inf), np.nextafter(halfway, -np.inf)]
    # float32's max stays finite; 2^-150 and less is 0 as float32 (PostgreSQL's cast refused it), just above it is not.
    tiny = ["1e-50", "-1e-50", repr(2.0**-150), repr(float(np.nextafter(2.0**-150, 1.0)))]
    scored = [*(repr(float(v)) for v in near), "NaN", None, "3.4028235677973362e38", "-0.0", *tiny]
    quarantined = ["-1", "Infinity", "-Infinity", "1e39", "-1e39", "3.4028235677973366e38"]  # the last four: ±inf as float32
    ids = customers(warehouse, 40)
    for customer, value in zip(ids, scored, strict=False):
        set_value(warehouse, "sessions_trend", customer, value)
    for customer, value in zip(ids[14:], quarantined, strict=False):
        set_value(warehouse, "minutes_30d", customer, value)
    # Integers as the model reads them: 2^24 + 1 is 2^24 in float32; a failed-payments count on its cut.
    set_value(warehouse, "tenure_days", ids[20], "16777217", "integer")
    set_value(warehouse, "failed_payments_30d", ids[21], "2", "integer")
    # Unseen categories, a NULL one, an empty string, another case; one in a quarantined row.
    for customer, (column, value) in zip(
        ids[22:], [("plan", "gold"), ("plan", "Basic"), ("region", None), ("channel", ""), ("plan", None)], strict=False
    ):
        set_value(warehouse, column, customer, value, "varchar")
    set_value(warehouse, "plan", ids[15], "gold", "varchar")
    return {"inf": 5, "quarantined": 6}


def profile_rows(warehouse, day=AS_OF):
    return warehouse.query(
        "select model_version, feature, bin, rows, mean, scoring_run_id from monitoring.feature_profiles "
        "where as_of_date = $1 order by model_version, feature, bin",
        [day],
    ).to_pylist()


def assert_same(stored, binned):
    """The same profile to the row; the means to a relative 1e-12 (float64 sums in another order)."""
    assert stored is not None and binned is not None
    assert stored.counts == binned.counts
    assert stored.rows == binned.rows
    assert stored.means.keys() == binned.means.keys()
    for name, mean in binned.means.items():
        assert (stored.means[name] is None) == (mean is None), name
        if mean is not None:
            assert stored.means[name] == pytest.approx(mean, rel=1e-12), name


@pytest.mark.parametrize("shards", [1, 2])
def test_the_scorers_profile_is_the_warehouses_on_every_edge(settings, spec, warehouse, base_home, tmp_path, shards):
    model = base_home["trained"].model
    reference = resources(settings).registry.training_reference(model)
    expected = plant_edges(warehouse, reference)
    relaxed_spec = relaxed(spec, tmp_path, shards)
    attempt, validation, published = score_date(settings, relaxed_spec)
    assert published.rows_quarantined == expected["quarantined"]

    run = health.scoring_run(warehouse, spec, model.version, AS_OF)
    assert run == attempt.scoring_run_id
    stored = drift.stored_profile(warehouse, spec, reference, model.version, AS_OF, run)
    binned = drift.binned(warehouse, spec, reference, model.version, AS_OF, run)
    assert_same(stored, binned)
    # Every row of the partition, the quarantined ones included; the scores of the scored rows.
    assert stored.rows == validation.rows == sum(stored.counts["plan"])
    assert sum(stored.counts[drift.SCORE]) == published.rows_scored == validation.rows - expected["quarantined"]
    # The edges landed where the model reads them: +inf, -inf, 1e39, -1e39 and 3.4028235677973366e38 (quarantined)
    # in the infinite bin; NaN with the nulls.
    assert stored.counts["minutes_30d"][-2] == expected["inf"]
    assert stored.counts["sessions_trend"][-2] == 0 and stored.counts["sessions_trend"][-1] >= 2
    plan = stored.counts["plan"]
    assert plan[-2] == 3 and plan[-1] == 1  # gold (twice, once quarantined) and Basic are other, NULL is null
    assert stored.counts["channel"][-2] >= 1 and stored.counts["region"][-1] >= 1
    assert {r["scoring_run_id"] for r in profile_rows(warehouse)} == {attempt.scoring_run_id}
    if shards > 1:  # the shards' parts went with the publish
        assert warehouse.query("select count(*) as n from analytics.churn_profile_staging").to_pylist() == [{"n": 0}]


def test_monitoring_reads_the_stored_profile_and_bins_a_date_without_one(settings, spec, warehouse, base_home, monkeypatch):
    model = base_home["trained"].model
    reference = resources(settings).registry.training_reference(model)
    attempt, _, _ = score_date(settings, spec)
    scored = drift.profile(warehouse, spec, reference, model.version, AS_OF)
    # The features change after scoring: a scan would see it, the profile of what was scored does not.
    warehouse.execute("update analytics.churn_features set sessions_trend = 0 where as_of_date = $1", [AS_OF])
    changed = drift.binned(warehouse, spec, reference, model.version, AS_OF, attempt.scoring_run_id)
    assert changed.counts["sessions_trend"] != scored.counts["sessions_trend"]
    scans = []
    histogram = health.histogram
    monkeypatch.setattr(health, "histogram", lambda w, table, *a, **k: scans.append(table.name) or histogram(w, table, *a, **k))
    model_health.monitor(resources(settings), spec, AS_OF)
    assert "churn_features" not in scans
    rows = profile_rows(warehouse)
    assert {r["scoring_run_id"] for r in rows} == {attempt.scoring_run_id}
    assert [r["rows"] for r in rows if r["feature"] == "sessions_trend"] == scored.counts["sessions_trend"]

    # A date scored before the scorer stored profiles (its rows carry no run id), or re-scored by
    # another route since: binned from the warehouse again, and stored with the run it describes.
    for stale in (None, "another-run"):
        warehouse.execute("update monitoring.feature_profiles set scoring_run_id = $1 where as_of_date = $2", [stale, AS_OF])
        scans.clear()
        model_health.monitor(resources(settings), spec, AS_OF)
        assert scans.count("churn_features") == 1
        assert_same(drift.profile(warehouse, spec, reference, model.version, AS_OF), changed)
        assert {r["scoring_run_id"] for r in profile_rows(warehouse)} == {attempt.scoring_run_id}


def test_a_rescore_replaces_the_profile_and_an_unpublish_removes_it(settings, spec, warehouse, base_home):
    model = base_home["trained"].model
    reference = resources(settings).registry.training_reference(model)
    bins = sum(len(b.labels) for b in [*reference.feature_bins(), reference.score.bins])
    score_date(settings, spec)
    warehouse.execute("update analytics.churn_features set tickets_30d = tickets_30d + 1 where as_of_date = $1", [AS_OF])
    attempt, _, _ = score_date(settings, spec)
    rows = profile_rows(warehouse)
    assert len(rows) == bins and {r["scoring_run_id"] for r in rows} == {attempt.scoring_run_id}  # replaced, not added
    stored = drift.stored_profile(warehouse, spec, reference, model.version, AS_OF, attempt.scoring_run_id)
    assert_same(stored, drift.binned(warehouse, spec, reference, model.version, AS_OF, attempt.scoring_run_id))

    unpublish(resources(settings), spec, AS_OF, AS_OF)
    assert profile_rows(warehouse) == []
    assert health.scoring_run(warehouse, spec, model.version, AS_OF) is None
    day = monitor_date(resources(settings), spec, AS_OF, model)
    assert day.status == HealthStatus.NO_PREDICTIONS and profile_rows(warehouse) == []


def test_the_profile_is_the_champions_beside_a_shadow(own, spec, warehouse, base_home):
    champion = base_home["trained"].model
    challenger = models.train(resources(own), spec, AS_OF - dt.timedelta(days=14), alias="challenger").model
    reference = resources(own).registry.training_reference(champion)
    attempt, _, published = score_date(own, replace(spec, shards=1))
    assert published.shadow_errors == () and attempt.shadows  # the challenger scored in the shadow
    assert {r["model_version"] for r in profile_rows(warehouse)} == {champion.version} != {challenger.version}
    run = attempt.scoring_run_id
    stored = drift.stored_profile(warehouse, spec, reference, champion.version, AS_OF, run)
    assert_same(stored, drift.binned(warehouse, spec, reference, champion.version, AS_OF, run))
    shadow = health.histogram(warehouse, tables.shadow(spec), AS_OF, [reference.score.bins], challenger.version, "challenger")
    assert sum(shadow.counts["score"]) == sum(stored.counts[drift.SCORE])  # scored beside it, counted apart
