"""Scoring a real feature partition with a real registered model."""

import pytest

from pipelines import registry, steps
from pipelines.errors import EmptyPartition, FeatureSchemaError, ModelNotFound
from pipelines.score import check_signature, score_partition
from tests.conftest import AS_OF


def predictions(warehouse):
    return warehouse.query("select * from predictions.churn_scores order by customer_id").to_pylist()


def test_scoring_a_date_twice_replaces_it(settings, spec, warehouse):
    validation = steps.validate(settings, spec, AS_OF)
    first = steps.score(settings, spec, AS_OF, validation["validation_id"], airflow_run_id="manual__1")
    second = steps.score(settings, spec, AS_OF, validation["validation_id"], airflow_run_id="manual__2")

    n_features = warehouse.query("select count(*) as n from analytics.churn_features where as_of_date = $1", [AS_OF]).to_pylist()[
        0
    ]["n"]
    assert first["rows_scored"] == second["rows_scored"] == n_features
    rows = predictions(warehouse)
    assert len(rows) == n_features
    assert len({r["customer_id"] for r in rows}) == n_features
    assert {r["scoring_run_id"] for r in rows} == {second["scoring_run_id"]} != {first["scoring_run_id"]}
    assert {r["airflow_run_id"] for r in rows} == {"manual__2"}
    assert all(0.0 <= r["score"] <= 1.0 for r in rows)
    champion = registry.resolve(settings, "churn", "champion")
    assert {(r["model_name"], r["model_version"], r["mlflow_run_id"]) for r in rows} == {
        ("churn", champion.version, champion.run_id)
    }

    runs = warehouse.query("select * from monitoring.scoring_runs order by started_at").to_pylist()
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert all(r["rows_read"] == r["rows_scored"] == n_features and r["ended_at"] >= r["started_at"] for r in runs)


def test_small_batches_give_the_same_scores(settings, spec, warehouse):
    from dataclasses import replace

    model = registry.resolve(settings, "churn", "champion")
    score_partition(settings, spec, AS_OF, model, "big")
    big = [(r["customer_id"], r["score"]) for r in predictions(warehouse)]
    score_partition(settings, replace(spec, batch_size=97), AS_OF, model, "small")
    rows = predictions(warehouse)
    assert [(r["customer_id"], r["score"]) for r in rows] == big
    # The lineage columns are built once and sliced for shorter batches: every row has them.
    lineage = {(r["as_of_date"], r["model_name"], r["model_version"], r["scoring_run_id"], r["scored_at"]) for r in rows}
    assert len(lineage) == 1 and list(lineage)[0][:4] == (AS_OF, "churn", model.version, "small")


def test_an_unknown_alias_fails_and_leaves_predictions(settings, spec, warehouse):
    validation = steps.validate(settings, spec, AS_OF)
    steps.score(settings, spec, AS_OF, validation["validation_id"])
    before = predictions(warehouse)
    with pytest.raises(ModelNotFound, match="no alias 'nope'"):
        steps.score(settings, spec, AS_OF, validation["validation_id"], alias="nope")
    assert predictions(warehouse) == before
    last = warehouse.query("select status, error from monitoring.scoring_runs order by started_at desc limit 1").to_pylist()[0]
    assert last["status"] == "failed" and "nope" in last["error"]


def test_a_missing_feature_column_is_named(settings, spec, warehouse):
    warehouse.execute("alter table analytics.churn_features rename column sessions_7d to sessions_week")
    model = registry.resolve(settings, "churn", "champion")
    with pytest.raises(FeatureSchemaError, match="sessions_7d"):
        score_partition(settings, spec, AS_OF, model, "x")


def test_a_feature_of_the_wrong_type_is_named(settings, spec, warehouse):
    warehouse.execute("alter table analytics.churn_features alter column tenure_days type varchar")
    model = registry.resolve(settings, "churn", "champion")
    with pytest.raises(FeatureSchemaError, match="tenure_days.*needs a number"):
        score_partition(settings, spec, AS_OF, model, "x")


def test_a_model_trained_on_other_features_is_refused(spec):
    model = registry.ResolvedModel("churn", "3", "run", "champion")
    with pytest.raises(FeatureSchemaError, match="in the model only: \\['old_feature'\\]"):
        check_signature(spec, [*spec.feature_names[:-1], "old_feature"], model)


def test_an_empty_partition_is_refused_and_keeps_old_rows(settings, spec, warehouse):
    model = registry.resolve(settings, "churn", "champion")
    score_partition(settings, spec, AS_OF, model, "first")
    before = predictions(warehouse)
    warehouse.execute("delete from analytics.churn_features where as_of_date = $1", [AS_OF])
    with pytest.raises(EmptyPartition, match="no rows for as_of_date 2026-01-31"):
        score_partition(settings, spec, AS_OF, model, "second")
    assert predictions(warehouse) == before


def test_shards_are_published_all_at_once(settings, spec, warehouse):
    from dataclasses import replace

    sharded = replace(spec, shards=3)
    validation = steps.validate(settings, sharded, AS_OF)
    steps.score(settings, spec, AS_OF, validation["validation_id"])
    single = {(r["customer_id"], r["score"]) for r in predictions(warehouse)}

    model = steps.resolve_model(settings, sharded, AS_OF)
    results = [steps.score_shard(settings, sharded, AS_OF, validation["validation_id"], model, k) for k in range(3)]
    assert all(r["rows_scored"] > 0 for r in results)
    # Staged but not published: readers still see the previous run's rows.
    assert {r["scoring_run_id"] for r in predictions(warehouse)} != {model["scoring_run_id"]}
    steps.publish(settings, sharded, AS_OF, validation["validation_id"], model, results)
    rows = predictions(warehouse)
    assert {(r["customer_id"], r["score"]) for r in rows} == single
    assert {r["scoring_run_id"] for r in rows} == {model["scoring_run_id"]}
    assert warehouse.query("select count(*) as n from analytics.churn_scores_staging").to_pylist() == [{"n": 0}]


def test_a_missing_shard_publishes_nothing(settings, spec, warehouse):
    from dataclasses import replace

    from pipelines.errors import BatchpredError

    sharded = replace(spec, shards=2)
    validation = steps.validate(settings, sharded, AS_OF)
    steps.score(settings, spec, AS_OF, validation["validation_id"])
    before = predictions(warehouse)
    model = steps.resolve_model(settings, sharded, AS_OF)
    first = steps.score_shard(settings, sharded, AS_OF, validation["validation_id"], model, 0)
    with pytest.raises(BatchpredError, match=r"shard\(s\) \[2\] of 2 did not finish"):
        steps.publish(settings, sharded, AS_OF, validation["validation_id"], model, [first])
    assert predictions(warehouse) == before


class _Broken(Exception):
    pass


@pytest.mark.parametrize("stage", ["score", "read"])
def test_a_failure_in_a_later_batch_propagates_as_itself_and_keeps_old_rows(settings, spec, warehouse, monkeypatch, stage):
    """Reading and scoring run in their own threads; their errors still reach the caller
    unchanged (not as a driver's I/O error) and the write transaction rolls back."""
    from contextlib import contextmanager
    from dataclasses import replace

    from pipelines import score

    model = registry.resolve(settings, "churn", "champion")
    score_partition(settings, spec, AS_OF, model, "first")
    before = predictions(warehouse)
    calls = []
    if stage == "score":
        real_matrix = score.feature_matrix

        def failing_matrix(batch, spec):
            calls.append(1)
            if len(calls) == 3:
                raise _Broken("third batch")
            return real_matrix(batch, spec)

        monkeypatch.setattr(score, "feature_matrix", failing_matrix)
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
        score_partition(settings, replace(spec, batch_size=100), AS_OF, model, "second")
    assert predictions(warehouse) == before
