"""Failures a user or the machine can cause, each leaving the warehouse as it was."""

import os
import signal
import subprocess
import sys
import textwrap

from pipelines import registry, steps
from pipelines.score import score_partition
from tests.conftest import AS_OF

# Scores AS_OF in small batches, printing a line as each batch is about to be scored
# and pausing a little, so the test can kill it half way through the write.
CHILD = textwrap.dedent(
    """
    import dataclasses, datetime as dt, sys, time
    from pipelines import registry, score
    from pipelines.settings import Settings
    from pipelines.spec import load_spec

    real_matrix = score.feature_matrix

    def announced(batch, spec):
        print("BATCH", flush=True)
        time.sleep(0.1)
        return real_matrix(batch, spec)

    score.feature_matrix = announced
    settings = Settings.from_env()
    spec = dataclasses.replace(load_spec("churn"), batch_size=50)
    model = registry.resolve(settings, "churn", "champion")
    score.score_partition(settings, spec, dt.date.fromisoformat(sys.argv[1]), model, "killed-run")
    print("DONE", flush=True)
    """
)


def predictions(warehouse):
    return warehouse.query("select customer_id, score, scoring_run_id from predictions.churn_scores order by 1").to_pylist()


def test_a_scoring_process_killed_mid_write_leaves_the_old_rows(settings, spec, warehouse):
    model = registry.resolve(settings, "churn", "champion")
    score_partition(settings, spec, AS_OF, model, "first-run")
    before = predictions(warehouse)
    env = {
        **os.environ,
        "BATCHPRED_HOME": str(settings.home),
        "BATCHPRED_WAREHOUSE_URL": settings.warehouse_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, AS_OF.isoformat()], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    seen = 0
    for line in child.stdout:
        seen += line.strip() == "BATCH"
        if seen == 5:  # four batches are already inside the open write transaction
            child.send_signal(signal.SIGKILL)
            break
    child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr.read()

    assert predictions(warehouse) == before
    retried = score_partition(settings, spec, AS_OF, model, "retry")
    after = predictions(warehouse)
    assert retried.rows_scored == len(after) == len(before)
    assert {r["scoring_run_id"] for r in after} == {"retry"}
    assert [(r["customer_id"], r["score"]) for r in after] == [(r["customer_id"], r["score"]) for r in before]


def test_an_extra_feature_column_changes_nothing(settings, spec, warehouse):
    validation = steps.validate(settings, spec, AS_OF)
    steps.score(settings, spec, AS_OF, validation["validation_id"])
    before = [(r["customer_id"], r["score"]) for r in predictions(warehouse)]
    warehouse.execute("alter table analytics.churn_features add column shiny_new_feature double precision")
    warehouse.execute("update analytics.churn_features set shiny_new_feature = 42")
    validation = steps.validate(settings, spec, AS_OF)
    steps.score(settings, spec, AS_OF, validation["validation_id"])
    assert [(r["customer_id"], r["score"]) for r in predictions(warehouse)] == before
