"""Scoring a real feature partition with a real registered model, on both warehouses."""

from dataclasses import replace

import pytest
from conftest import mlflow_at, resources

from pipelines.domain.errors import (
    BatchpredError,
    ContractError,
    EmptyPartition,
    FeatureSchemaError,
    ModelNotFound,
    PartitionMismatch,
)
from pipelines.domain.records import ValidationRef
from pipelines.scoring.score import score_partition
from pipelines.usecases import steps
from tests.conftest import AS_OF, run_log, score_date


def predictions(warehouse, table="churn_scores", key="customer_id"):
    return warehouse.query(f"select * from predictions.{table} order by {key}").to_pylist()


def features_count(warehouse, table="churn_features"):
    return warehouse.query(f"select count(*) as n from analytics.{table} where as_of_date = $1", [AS_OF]).to_pylist()[0]["n"]


def test_scoring_a_date_twice_replaces_it(settings, spec, warehouse):
    first = score_date(settings, spec, airflow_run_id="manual__1")[2]
    second = score_date(settings, spec, airflow_run_id="manual__2")[2]

    n_features = features_count(warehouse)
    assert first.rows_scored == second.rows_scored == n_features
    rows = predictions(warehouse)
    assert len(rows) == n_features
    assert len({r["customer_id"] for r in rows}) == n_features
    assert {r["scoring_run_id"] for r in rows} == {second.scoring_run_id} != {first.scoring_run_id}
    assert {r["airflow_run_id"] for r in rows} == {"manual__2"}
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)
    champion = resources(settings).registry.resolve("churn", "champion")
    assert {(r["model_name"], r["model_version"], r["mlflow_run_id"]) for r in rows} == {
        ("churn", champion.version, champion.run_id)
    }
    assert isinstance(rows[0]["model_version"], int)

    # One run-log row per attempt: published by `score`, the marts not built here.
    runs = run_log(warehouse)
    assert [(r["status"], r["scoring_run_id"]) for r in runs] == [
        ("published", first.scoring_run_id),
        ("published", second.scoring_run_id),
    ]
    assert all(r["rows_read"] == r["rows_scored"] == n_features and r["rows_quarantined"] == 0 for r in runs)


def test_text_keys_round_trip_exactly(settings, invoice_spec, warehouse):
    """payment_risk's key is text with leading zeros ('INV-00001234'): every table keeps it as given."""
    published = score_date(settings, invoice_spec)[2]
    features = (
        warehouse.query("select invoice_number from analytics.payment_risk_features where as_of_date = $1 order by 1", [AS_OF])
        .column("invoice_number")
        .to_pylist()
    )
    scored = [r["invoice_number"] for r in predictions(warehouse, "payment_risk_scores", "invoice_number")]
    assert published.rows_scored == len(features) > 100
    assert scored == features
    assert all(k.startswith("INV-0") and len(k) == 12 for k in scored)
    types = warehouse.table_columns("predictions", "payment_risk_scores")
    assert "char" in types["invoice_number"].lower() or "text" in types["invoice_number"].lower()


def test_small_batches_give_the_same_scores(settings, spec, warehouse):
    attempt, validation, _ = score_date(settings, spec)
    big = [(r["customer_id"], r["score"]) for r in predictions(warehouse)]
    score_partition(resources(settings), replace(spec, batch_size=97), AS_OF, attempt.model, validation, "small")
    rows = predictions(warehouse)
    assert [(r["customer_id"], r["score"]) for r in rows] == big
    # The lineage columns are built once and sliced for shorter batches: every row has them.
    lineage = {(r["as_of_date"], r["model_name"], r["model_version"], r["scoring_run_id"], r["scored_at"]) for r in rows}
    assert len(lineage) == 1 and list(lineage)[0][:4] == (AS_OF, "churn", attempt.model.version, "small")


def test_an_unknown_alias_fails_before_any_work_and_leaves_predictions(settings, spec, warehouse):
    score_date(settings, spec)
    before = predictions(warehouse)
    with pytest.raises(ModelNotFound, match="no alias 'nope'"):
        steps.plan(resources(settings), spec, AS_OF, alias="nope")
    assert predictions(warehouse) == before
    last = run_log(warehouse)[-1]
    assert (last["status"], last["step"]) == ("refused", "plan") and "nope" in last["error"]


def test_a_missing_feature_column_is_named(settings, spec, warehouse):
    attempt, validation, _ = score_date(settings, spec)
    warehouse.execute("alter table analytics.churn_features rename column sessions_7d to sessions_week")
    with pytest.raises(FeatureSchemaError, match="sessions_7d"):
        score_partition(resources(settings), spec, AS_OF, attempt.model, validation, "x")


def test_a_feature_of_the_wrong_type_is_named(settings, spec, warehouse):
    attempt, validation, _ = score_date(settings, spec)
    warehouse.execute("alter table analytics.churn_features alter column tenure_days type varchar")
    with pytest.raises(FeatureSchemaError, match="tenure_days.*needs a number"):
        score_partition(resources(settings), spec, AS_OF, attempt.model, validation, "x")


def test_an_empty_partition_is_refused_and_keeps_old_rows(settings, spec, warehouse):
    attempt, validation, _ = score_date(settings, spec)
    before = predictions(warehouse)
    warehouse.execute("delete from analytics.churn_features where as_of_date = $1", [AS_OF])
    with pytest.raises(EmptyPartition, match="no rows to score for as_of_date 2026-01-31"):
        score_partition(resources(settings), replace(spec, shards=1), AS_OF, attempt.model, validation, "second")
    assert predictions(warehouse) == before


@pytest.mark.parametrize("shards", [1, 2])
def test_rows_that_appear_after_validation_are_not_published(settings, spec, warehouse, shards):
    """Scored plus quarantined must be the partition the validation counted, checked in the
    code path itself: a feature row added after validation stops the publish."""
    sharded = replace(spec, shards=shards)
    score_date(settings, sharded)
    before = predictions(warehouse)
    attempt = steps.plan(resources(settings), sharded, AS_OF)
    validation = steps.validate(resources(settings), sharded, attempt)
    warehouse.execute(
        "insert into analytics.churn_features select * from analytics.churn_features where as_of_date = $1 limit 1", [AS_OF]
    )
    with pytest.raises(PartitionMismatch, match="nothing was published"):
        steps.score(resources(settings), sharded, attempt, validation)
    assert predictions(warehouse) == before
    assert run_log(warehouse)[-1]["status"] == "failed"


def test_shards_are_published_all_at_once(settings, spec, warehouse):
    single = score_date(settings, replace(spec, shards=1))[2]
    by_key = {(r["customer_id"], r["score"]) for r in predictions(warehouse)}

    sharded = replace(spec, shards=3)
    attempt = steps.plan(resources(settings), sharded, AS_OF)
    validation = steps.validate(resources(settings), sharded, attempt)
    results = [steps.score_shard(resources(settings), sharded, attempt, validation, k) for k in range(3)]
    assert all(r.rows_scored > 0 for r in results)
    # Staged but not published: readers still see the previous run's rows.
    assert {r["scoring_run_id"] for r in predictions(warehouse)} == {single.scoring_run_id}
    steps.publish(resources(settings), sharded, attempt, validation, results)
    rows = predictions(warehouse)
    assert {(r["customer_id"], r["score"]) for r in rows} == by_key
    assert {r["scoring_run_id"] for r in rows} == {attempt.scoring_run_id}
    assert warehouse.query("select count(*) as n from analytics.churn_scores_staging").to_pylist() == [{"n": 0}]


def test_text_keys_shard_and_publish(settings, invoice_spec, warehouse):
    """The shard hash works on text keys: three shards give exactly the one-shard rows."""
    score_date(settings, invoice_spec)
    single = {(r["invoice_number"], r["score"]) for r in predictions(warehouse, "payment_risk_scores", "invoice_number")}
    published = score_date(settings, replace(invoice_spec, shards=3))[2]
    rows = predictions(warehouse, "payment_risk_scores", "invoice_number")
    assert {(r["invoice_number"], r["score"]) for r in rows} == single
    assert published.rows_scored == len(single)


def test_a_missing_shard_publishes_nothing(settings, spec, warehouse):
    sharded = replace(spec, shards=2)
    score_date(settings, sharded)
    before = predictions(warehouse)
    attempt = steps.plan(resources(settings), sharded, AS_OF)
    validation = steps.validate(resources(settings), sharded, attempt)
    first = steps.score_shard(resources(settings), sharded, attempt, validation, 0)
    with pytest.raises(BatchpredError, match=r"shard\(s\) \[2\] of 2 did not finish"):
        steps.publish(resources(settings), sharded, attempt, validation, [first])
    assert predictions(warehouse) == before


def test_scoring_needs_a_passed_validation_of_the_date(settings, spec, warehouse):
    attempt = steps.plan(resources(settings), spec, AS_OF)
    from pipelines.domain.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="validate the date before scoring it"):
        steps.score_shard(resources(settings), spec, attempt, ValidationRef("made-up", 10, 0), 0)


class _Broken(Exception):
    pass


@pytest.mark.parametrize("stage", ["score", "read"])
def test_a_failure_in_a_later_batch_propagates_as_itself_and_keeps_old_rows(settings, spec, warehouse, monkeypatch, stage):
    """Reading and scoring run in their own threads; their errors still reach the caller
    unchanged (not as a driver's I/O error) and the write transaction rolls back."""
    from contextlib import contextmanager

    from pipelines.config.contract import InputContract

    attempt, validation, _ = score_date(settings, spec)
    before = predictions(warehouse)
    calls = []
    if stage == "score":
        real_matrix = InputContract.matrix

        def failing_matrix(self, batch):
            calls.append(1)
            if len(calls) == 3:
                raise _Broken("third batch")
            return real_matrix(self, batch)

        monkeypatch.setattr(InputContract, "matrix", failing_matrix)
    else:
        real_read = type(warehouse).read_partition

        @contextmanager
        def failing_read(self, *args, **kwargs):
            with real_read(self, *args, **kwargs) as batches:

                def broken():
                    for i, batch in enumerate(batches):
                        if i == 2:
                            raise _Broken("third batch")
                        yield batch

                yield broken()

        monkeypatch.setattr(type(warehouse), "read_partition", failing_read)
    with pytest.raises(_Broken, match="third batch"):
        score_partition(resources(settings), replace(spec, batch_size=100), AS_OF, attempt.model, validation, "second")
    assert predictions(warehouse) == before


# -- the input contract ----------------------------------------------------------------


def test_a_reordered_vocabulary_in_the_spec_is_refused_naming_both_sides(settings, spec, warehouse):
    reordered = replace(spec, categorical_features={**spec.categorical_features, "plan": ("premium", "basic", "standard")})
    with pytest.raises(ContractError) as excinfo:
        steps.plan(resources(settings), reordered, AS_OF)
    message = str(excinfo.value)
    assert "feature plan" in message
    assert "['basic', 'standard', 'premium']" in message and "['premium', 'basic', 'standard']" in message
    assert warehouse.table_columns("predictions", "churn_scores") is None


def test_the_same_version_scores_the_same_whatever_the_spec_lists_after_it(settings, spec, warehouse):
    """A feature the version was not trained on (a newer spec) is allowed: the version reads
    only its own contract's columns, so its scores do not change."""
    score_date(settings, spec)
    before = [(r["customer_id"], r["score"]) for r in predictions(warehouse)]
    warehouse.execute("alter table analytics.churn_features add column brand_new double precision")
    newer = replace(spec, numeric_features=(*spec.numeric_features, "brand_new"))
    score_date(settings, newer)
    assert [(r["customer_id"], r["score"]) for r in predictions(warehouse)] == before


def test_a_spec_that_lists_the_features_in_another_order_is_refused_saying_so(settings, spec):
    swapped = replace(spec, numeric_features=(spec.numeric_features[1], spec.numeric_features[0], *spec.numeric_features[2:]))
    with pytest.raises(ContractError, match="in the order"):
        steps.plan(resources(settings), swapped, AS_OF)


def test_a_spec_that_drops_a_feature_the_version_reads_is_refused(settings, spec):
    dropped = replace(spec, numeric_features=spec.numeric_features[1:])
    with pytest.raises(ContractError, match=f"trained on feature {spec.numeric_features[0]}.*no longer lists"):
        steps.plan(resources(settings), dropped, AS_OF)


def test_a_version_without_an_input_contract_is_refused_with_the_fix(settings, spec, tmp_path, base_home):
    """A version registered without batchpred's contract (by hand, or by an older batchpred)."""
    import shutil

    import mlflow
    import mlflow.xgboost

    source = base_home["settings"].mlflow_tracking_uri.removeprefix("sqlite:///")
    shutil.copy(source, tmp_path / "mlflow.db")
    own = replace(settings, mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    registry = resources(own).registry
    booster = registry.load_booster(registry.resolve("churn", "champion"))
    with mlflow_at(own), mlflow.start_run():  # logged by hand, as a user would, not through batchpred
        info = mlflow.xgboost.log_model(booster, name="model", registered_model_name="churn")
    registry.set_alias(registry.pin("churn", int(info.registered_model_version)), "bare")
    with pytest.raises(ContractError, match="without an input contract.*batchpred train churn"):
        steps.plan(resources(own), spec, AS_OF, alias="bare")
