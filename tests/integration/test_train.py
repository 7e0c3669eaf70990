"""Training against a real MLflow SQLite store and real dbt features and labels."""

import datetime as dt
import json
import shutil
from dataclasses import replace

import pytest
from conftest import resources

from pipelines.domain.errors import IncompleteDate, InputError, ModelNotFound
from pipelines.domain.reference import FORMAT
from pipelines.training import train
from pipelines.usecases import models
from tests.conftest import AS_OF, score_date


def test_the_base_models_are_registered_as_champion_and_learn(base_home, spec, invoice_spec):
    settings = base_home["settings"]
    for model_spec in (spec, invoice_spec):
        trained = base_home["trained_by_model"][model_spec.name]
        assert trained.promoted is True and not trained.skipped
        assert trained.metrics["auc"] > 0.7, trained.metrics
        champion = resources(settings).registry.resolve(model_spec.name, "champion")
        assert champion == replace(trained.model, alias="champion")
        contract = resources(settings).registry.contract(champion)
        assert contract.feature_names == model_spec.feature_names
    registry = resources(settings).registry
    assert registry.contract(registry.resolve("payment_risk", "champion")).key == (("invoice_number", "string"),)
    assert registry.contract(registry.resolve("churn", "champion")).key == (("customer_id", "int64"),)


def test_the_training_reference_is_logged_with_the_version(base_home, spec):
    trained = base_home["trained"]
    reference = resources(base_home["settings"]).registry.training_reference(trained.model)
    assert reference.to_dict()["format"] == FORMAT and list(reference.features) == list(spec.feature_names)
    plan = reference.features["plan"]
    assert plan.categories == ("basic", "standard", "premium") and len(plan.counts) == 5  # + other, null
    assert sum(plan.counts) == plan.rows == trained.train_rows
    tenure = reference.features["tenure_days"]
    assert (
        1 <= len(tenure.cuts) <= 9
        and list(tenure.cuts) == sorted(tenure.cuts)
        and len(tenure.counts) == len(tenure.cuts) + 3  # the ranges, then ±inf, then null
    )
    assert reference.score.rows == trained.validation_rows and sum(reference.score.counts) == trained.validation_rows
    assert reference.validation.auc == pytest.approx(trained.metrics["auc"])
    calibration = reference.calibration
    assert len(calibration.x) == len(calibration.y) > 2 and list(calibration.y) == sorted(calibration.y)
    assert sum(reference.importance.values()) == pytest.approx(1.0)


def test_the_alias_moves_only_to_a_better_model(own, spec):
    fresh = replace(own, mlflow_tracking_uri=own.mlflow_tracking_uri.replace("own-mlflow", "fresh"))
    first = models.train(resources(fresh), spec, AS_OF)
    assert first.promoted and first.champion_metrics is None and "there was no version at @champion" in first.verdict
    second = models.train(resources(own), spec, AS_OF)  # same data, same seed as the base's champion: not better, so not promoted
    assert second.champion_metrics == pytest.approx(second.metrics)
    assert second.promoted is False and "stays on version" in second.verdict
    assert resources(own).registry.resolve("churn", "champion").version != second.model.version


def test_training_on_a_date_past_the_data_is_refused(own, spec):
    """Three weeks after the last event: the newest snapshots' labels are not observable yet."""
    with pytest.raises(IncompleteDate, match="raw.usage_daily.*is on 2026-01-31"):
        models.train(resources(own), spec, AS_OF + dt.timedelta(days=21))


def test_snapshots_without_their_full_history_are_skipped_and_named(own, spec):
    """A window that reaches back into the first 90 days of data: those snapshots are left out."""
    wide = replace(spec, training=replace(spec.training, window_days=210))
    result = models.train(resources(own), wide, AS_OF)
    assert result.skipped and all("needs 90 days of history" in why for why in result.skipped.values())
    assert min(result.snapshots) > max(result.skipped)
    labels_from = min(result.snapshots) - dt.timedelta(days=89)
    assert labels_from >= dt.date(2025, 5, 7)  # the demo data's first day (270 days ending AS_OF)


def test_force_promote_needs_a_reason_and_records_it(own, spec):
    with pytest.raises(InputError, match="--reason"):
        models.train(resources(own), spec, AS_OF, force=True)
    forced = models.train(resources(own), spec, AS_OF, force=True, reason="rolled back a bad feature")
    assert forced.promoted and "by force" in forced.verdict
    assert resources(own).registry.resolve("churn", "champion").version == forced.model.version
    tags = resources(own).registry.client.get_model_version("churn", str(forced.model.version)).tags
    assert tags["promotion_reason"] == "rolled back a bad feature" and tags["promoted_by"]


def test_adding_a_feature_to_a_model_with_a_champion(own, spec, warehouse, tmp_path, monkeypatch):
    """A new feature line in model.yaml and its SQL column: the feature table gains the column
    (on_schema_change), the champion is compared on its own input contract, and today's
    champion keeps scoring through it."""
    from pipelines.adapters import transform
    from pipelines.config.settings import DBT_PROJECT_DIR

    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    sql = project / "models" / "features" / "churn_features.sql"
    text = sql.read_text()
    marker = "        cast(coalesce(tickets.billing_tickets_90d, 0) as integer) as billing_tickets_90d\n"
    assert marker in text
    sql.write_text(
        text.replace(
            marker, marker.rstrip("\n") + ",\n        cast(coalesce(tickets.tickets_30d, 0) * 2 as integer) as tickets_doubled\n"
        )
    )
    monkeypatch.setattr(transform, "DBT_PROJECT_DIR", project)
    newer = replace(spec, numeric_features=(*spec.numeric_features, "tickets_doubled"))

    champion = resources(own).registry.resolve("churn", "champion")
    result = models.train(resources(own), newer, AS_OF)
    assert result.champion == champion and result.champion_metrics is not None  # scored on its own 16 features
    assert "tickets_doubled" in resources(own).registry.contract(result.model).feature_names
    assert "tickets_doubled" in warehouse.table_columns("analytics", "churn_features")
    # Whatever the verdict, the champion still scores today's partition with the newer spec.
    resources(own).dbt.build_features(newer, [AS_OF])
    published = score_date(own, newer, alias="champion")[2]
    assert published.rows_scored > 0


def test_a_champion_that_cannot_be_scored_on_todays_data_is_not_replaced_silently(own, spec):
    """A feature the champion needs is gone from the spec: it cannot be compared, so the new
    version is not promoted without --force-promote."""
    fewer = replace(spec, numeric_features=spec.numeric_features[1:])
    champion = resources(own).registry.resolve("churn", "champion")
    result = train.train_model(resources(own), fewer, AS_OF)
    assert not result.promoted and "cannot be scored on today's data" in result.verdict
    assert spec.numeric_features[0] in result.verdict
    assert resources(own).registry.resolve("churn", "champion") == champion


def test_an_unknown_alias_is_an_error_naming_it(base_home):
    with pytest.raises(ModelNotFound, match="no alias 'challenger'.*champion"):
        resources(base_home["settings"]).registry.resolve("churn", "challenger")


def test_the_reference_json_is_plain(base_home):
    reference = resources(base_home["settings"]).registry.training_reference(base_home["trained"].model)
    # Strict JSON (no NaN or Infinity token) that reads back as the same values.
    assert json.loads(json.dumps(reference.to_dict(), allow_nan=False)) == reference.to_dict()
