"""Champion/challenger: a shadow version scores the same partition in the same read, never
touches the champion's rows, is compared per date, and is promoted only the governed way.
Real MLflow stores (a private copy each), both warehouses."""

import datetime as dt
import shutil
from dataclasses import replace

import pytest
from conftest import resources

from pipelines.domain.errors import InputError
from pipelines.training.promote import promote
from pipelines.usecases import backfill, models
from pipelines.usecases import health as model_health
from tests.conftest import AS_OF, run_log, score_date

EARLIER = AS_OF - dt.timedelta(days=14)



@pytest.fixture
def challenger(own, spec):
    """A second version, trained two weeks earlier, at @challenger."""
    result = models.train(resources(own), spec, EARLIER, alias="challenger")
    assert result.promoted and "@challenger" in result.verdict
    return result.model


def champion_rows(warehouse):
    return warehouse.query(
        "select customer_id, as_of_date, score, model_name, model_version, mlflow_run_id from predictions.churn_scores order by 1"
    ).to_pylist()


def test_a_challenger_is_shadow_scored_and_the_champion_is_untouched(own, spec, warehouse, challenger):
    without = replace(spec, shadow_aliases=())
    score_date(own, without)
    alone = champion_rows(warehouse)
    assert warehouse.table_columns("predictions", "churn_shadow_scores") is None
    attempt, _, published = score_date(own, spec)
    assert champion_rows(warehouse) == alone  # byte-identical, with or without a challenger
    assert attempt.shadows == (replace(challenger, alias="challenger"),)
    shadow = warehouse.query(
        "select alias, model_version, count(*) as n, count(distinct customer_id) as k, min(scoring_run_id) as run "
        "from predictions.churn_shadow_scores group by 1, 2"
    ).to_pylist()
    assert shadow == [
        {
            "alias": "challenger",
            "model_version": challenger.version,
            "n": len(alone),
            "k": len(alone),
            "run": attempt.scoring_run_id,
        }
    ]
    assert published.shadow_errors == () and run_log(warehouse)[-1]["shadow_error"] is None
    # The comparison row, from the monitor.
    health = model_health.monitor(resources(own), spec, AS_OF)
    [row] = warehouse.query("select * from monitoring.shadow_comparison").to_pylist()
    assert (row["model_version"], row["challenger_alias"], row["challenger_version"]) == (
        attempt.model.version,
        "challenger",
        challenger.version,
    )
    assert row["rows"] == len(alone) and 0.5 < row["pearson"] <= 1 and 0.5 < row["spearman"] <= 1
    assert 0 <= row["mean_abs_difference"] <= row["p95_abs_difference"] and 0 <= row["flip_share"] < 0.2
    assert 0 < row["top_decile_jaccard"] <= 1 and row["psi"] >= 0
    assert row["champion_expected_auc"] == pytest.approx(health.expected_auc) and 0.5 < row["challenger_expected_auc"] < 1


def test_the_comparison_statistics_are_what_they_say(own, spec, warehouse, challenger):
    import numpy as np
    from scipy.stats import pearsonr, spearmanr

    score_date(own, spec)
    model_health.monitor(resources(own), spec, AS_OF)
    [row] = warehouse.query("select * from monitoring.shadow_comparison").to_pylist()
    pairs = warehouse.query(
        "select c.score as a, s.score as b from predictions.churn_scores c join predictions.churn_shadow_scores s "
        "using (customer_id, as_of_date) order by c.customer_id"
    )
    a, b = pairs.column("a").to_numpy(), pairs.column("b").to_numpy()
    assert row["pearson"] == pytest.approx(pearsonr(a, b).statistic, abs=1e-9)
    assert row["spearman"] == pytest.approx(spearmanr(a, b).statistic, abs=1e-9)
    assert row["mean_abs_difference"] == pytest.approx(np.abs(a - b).mean())
    assert row["flip_share"] == pytest.approx(((a >= spec.action_threshold) != (b >= spec.action_threshold)).mean())


def test_realized_auc_of_both_and_delong_once_labels_land(own, spec, warehouse, challenger):

    labelled = AS_OF - dt.timedelta(days=32)
    resources(own).dbt.build_features(spec, [labelled])
    score_date(own, spec, labelled)
    model_health.monitor(resources(own), spec, labelled)
    model_health.realize(resources(own), spec)
    [row] = warehouse.query("select * from monitoring.shadow_comparison where as_of_date = $1", [labelled]).to_pylist()
    realized = warehouse.query(
        "select roc_auc from monitoring.realized_performance where as_of_date = $1", [labelled]
    ).to_pylist()
    assert row["champion_realized_auc"] == pytest.approx(realized[0]["roc_auc"])
    assert 0.5 < row["challenger_realized_auc"] < 1 and 0 <= row["delong_p_value"] <= 1 and row["labelled_rows"] > 100


def challenger_reading_a_column_that_goes_away(own, spec, warehouse, tmp_path, monkeypatch):
    """A challenger trained on one more feature (its SQL column added, as a user would), whose
    column then disappears from the feature table: the champion does not read it."""
    from pipelines.adapters import transform
    from pipelines.config.settings import DBT_PROJECT_DIR

    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    sql = project / "models" / "features" / "churn_features.sql"
    marker = "        cast(coalesce(tickets.billing_tickets_90d, 0) as integer) as billing_tickets_90d\n"
    sql.write_text(
        sql.read_text().replace(
            marker, marker.rstrip("\n") + ",\n        cast(tickets.tickets_30d * 2 as integer) as tickets_doubled\n"
        )
    )
    with monkeypatch.context() as patched:
        patched.setattr(transform, "DBT_PROJECT_DIR", project)
        newer = replace(spec, numeric_features=(*spec.numeric_features, "tickets_doubled"))
        model = models.train(resources(own), newer, EARLIER, alias="challenger").model
    warehouse.execute("alter table analytics.churn_features drop column tickets_doubled")
    return model


@pytest.mark.parametrize("problem", ["reads_a_missing_column", "model_files_gone", "alias_missing"])
def test_a_failing_challenger_leaves_the_champion_published_and_says_why(own, spec, warehouse, tmp_path, monkeypatch, problem):
    score_date(own, replace(spec, shadow_aliases=()))
    alone = champion_rows(warehouse)
    if problem == "reads_a_missing_column":
        challenger_reading_a_column_that_goes_away(own, spec, warehouse, tmp_path, monkeypatch)
        expected = "tickets_doubled"
    elif problem == "model_files_gone":
        champion = resources(own).registry.resolve("churn", "champion")
        broken = resources(own).registry.client.create_model_version("churn", str(tmp_path / "gone"), run_id=champion.run_id)
        resources(own).registry.set_alias(resources(own).registry.pin("churn", int(broken.version)), "challenger")
        expected = "cannot read"
    else:
        expected = None  # no @challenger at all: the normal state before the first retrain
    attempt, _, published = score_date(own, spec)
    assert champion_rows(warehouse) == alone
    last = run_log(warehouse)[-1]
    assert last["status"] == "published"
    if expected is None:
        assert attempt.shadows == () and published.shadow_errors == () and last["shadow_error"] is None
        return
    assert published.shadow_errors and "@challenger" in published.shadow_errors[0] and expected in published.shadow_errors[0]
    assert expected in last["shadow_error"]
    health = model_health.monitor(resources(own), spec, AS_OF)
    assert any(a.check_name == "shadow_failed" and expected in a.message for a in health.alerts)


def test_promote_refuses_a_version_without_a_shadow_record_and_records_a_forced_one(own, spec, warehouse, challenger):
    with pytest.raises(InputError, match="--reason"):
        promote(resources(own), spec, "champion", challenger.version, None)
    with pytest.raises(InputError, match=f"version {challenger.version} has no shadow history"):
        promote(resources(own), spec, "champion", challenger.version, "looks better")
    before, after, _ = promote(resources(own), spec, "champion", challenger.version, "the new usage features", force=True)
    assert resources(own).registry.resolve("churn", "champion").version == challenger.version == after.version
    [row] = warehouse.query("select * from monitoring.promotions").to_pylist()
    assert (row["from_version"], row["to_version"], row["forced"], row["reason"]) == (
        before.version,
        challenger.version,
        True,
        "the new usage features",
    )
    tags = resources(own).registry.client.get_model_version("churn", str(challenger.version)).tags
    assert tags["promoted_to_champion_reason"] == "the new usage features" and tags["promoted_to_champion_forced"] == "true"


def test_a_shadowed_version_is_promoted_and_only_stale_dates_are_rescored(own, spec, warehouse, challenger):
    days = [AS_OF - dt.timedelta(days=2), AS_OF - dt.timedelta(days=1), AS_OF]
    outcomes = backfill.run(resources(own), spec, backfill.plan(resources(own), spec, days[0], days[1], None))
    assert all(o.ok for o in outcomes)
    score_date(own, spec)
    model_health.monitor(resources(own), spec, AS_OF)
    champion = resources(own).registry.resolve("churn", "champion")
    promote(resources(own), spec, "champion", challenger.version, "shadowed a day, estimates as good")
    stale = backfill.plan(resources(own), spec, days[0], days[-1], "stale")
    assert stale.dates == days and stale.model.version == challenger.version
    outcomes = backfill.run(resources(own), spec, replace(stale, dates=days[:2]))
    assert all(o.ok for o in outcomes)
    versions = dict(
        (r["as_of_date"], r["v"])
        for r in warehouse.query(
            "select as_of_date, max(model_version) as v from predictions.churn_scores group by 1"
        ).to_pylist()
    )
    assert versions == {days[0]: challenger.version, days[1]: challenger.version, AS_OF: champion.version}
    assert backfill.plan(resources(own), spec, days[0], days[-1], "stale").dates == [AS_OF]


def shadow_rows(warehouse) -> dict:
    """(as_of_date, alias, version) -> [rows, scoring runs] of the shadow table."""
    if warehouse.table_columns("predictions", "churn_shadow_scores") is None:
        return {}
    return {
        (r["as_of_date"], r["alias"], r["model_version"]): [r["n"], r["runs"]]
        for r in warehouse.query(
            "select as_of_date, alias, model_version, count(*) as n, count(distinct scoring_run_id) as runs "
            "from predictions.churn_shadow_scores group by 1, 2, 3"
        ).to_pylist()
    }


def test_promoting_the_challenger_stops_its_shadow_and_leaves_no_stale_rows(own, spec, warehouse, challenger):
    """The issue's case: promote version 2 while @challenger is version 2, then rescore the date."""
    import json

    from tests.integration.test_runlog import cli

    score_date(own, spec)
    model_health.monitor(resources(own), spec, AS_OF)  # champion against challenger: the shadow record promote reads
    v = challenger.version
    promoted = cli(own, "promote", "churn", "--version", str(v), "--reason", "shadowed a day, estimates as good")
    assert promoted.returncode == 0, promoted.stderr
    assert f"@challenger also points at version {v}, now the champion" in promoted.stdout
    assert "no longer shadow-scored" in promoted.stdout and "batchpred train churn --alias challenger" in promoted.stdout
    [promotion] = warehouse.query("select evidence from monitoring.promotions").to_pylist()
    assert json.loads(promotion["evidence"])["shadow_aliases_now_champion"] == ["challenger"]
    assert resources(own).registry.resolve("churn", "challenger").version == v  # left where it is, not moved or deleted

    attempt, _, published = score_date(own, spec)
    assert attempt.pinned.version == v and attempt.shadows == ()
    [why] = attempt.shadow_skipped
    assert why.startswith(f"@challenger is version {v}, the version scoring the date: not shadow-scored")
    assert published.shadow_skipped == (why,)
    last = run_log(warehouse)[-1]
    assert (last["status"], last["shadow_skipped"], last["shadow_error"]) == ("published", why, None)
    assert shadow_rows(warehouse) == {}  # the previous run's version-2 shadow rows went with its predictions
    model_health.monitor(resources(own), spec, AS_OF)
    pairs = warehouse.query("select model_version, challenger_version from monitoring.shadow_comparison").to_pylist()
    assert {"model_version": v, "challenger_version": v} not in pairs, pairs  # never the champion against itself


@pytest.mark.parametrize("shards", [1, 2])
def test_a_dates_shadow_rows_are_replaced_with_its_predictions(own, spec, warehouse, challenger, shards):
    """Rescoring with no shadow to score empties the date's shadow rows (and only that date's);
    scoring with it again leaves exactly that run's rows. One shard or several."""

    sharded = replace(spec, shards=shards)
    other = AS_OF - dt.timedelta(days=1)
    resources(own).dbt.build_features(spec, [other])
    _, _, kept = score_date(own, sharded, other)
    score_date(own, sharded)
    v = challenger.version
    both = shadow_rows(warehouse)
    assert set(both) == {(other, "challenger", v), (AS_OF, "challenger", v)}
    assert both[other, "challenger", v] == [kept.rows_scored, 1]
    score_date(own, replace(sharded, shadow_aliases=()))
    assert shadow_rows(warehouse) == {(other, "challenger", v): [kept.rows_scored, 1]}
    attempt, _, published = score_date(own, sharded)
    assert shadow_rows(warehouse) == {
        (other, "challenger", v): [kept.rows_scored, 1],
        (AS_OF, "challenger", v): [published.rows_scored, 1],
    }
    runs = warehouse.query("select distinct scoring_run_id from predictions.churn_shadow_scores where as_of_date = $1", [AS_OF])
    assert runs.column("scoring_run_id").to_pylist() == [attempt.scoring_run_id]


def test_a_rescore_that_fails_keeps_the_dates_shadow_rows_with_its_predictions(own, spec, warehouse, challenger):
    """Shadow rows and predictions change in one transaction: a rescore refused inside it (scored
    plus quarantined is not the validated partition) leaves both as they were."""
    from pipelines.domain.errors import PartitionMismatch
    from pipelines.scoring.score import score_partition

    attempt, validation, _ = score_date(own, spec)
    before = (champion_rows(warehouse), shadow_rows(warehouse))
    wrong = replace(validation, rows=validation.rows + 1)
    with pytest.raises(PartitionMismatch):
        score_partition(resources(own), spec, AS_OF, attempt.model, wrong, "rescore")  # no shadow: it would empty the date's
    assert (champion_rows(warehouse), shadow_rows(warehouse)) == before
