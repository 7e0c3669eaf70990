"""Failures a user or the machine can cause, each leaving the warehouse as it was."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace

from conftest import resources

from pipelines.domain.records import to_xcom
from pipelines.scoring.score import score_partition
from tests.conftest import AS_OF, score_date

# Scores AS_OF in small batches, printing a line as each batch is about to be scored
# and pausing a little, so the test can kill it half way through the write.
CHILD = textwrap.dedent(
    """
    import dataclasses, datetime as dt, json, sys, time
    from pipelines.adapters.resources import Resources
    from pipelines.scoring import score
    from pipelines.config.contract import InputContract
    from pipelines.domain.records import ValidationRef
    from pipelines.config.settings import Settings
    from pipelines.config.spec import load_spec

    real_matrix = InputContract.matrix

    def announced(self, batch):
        print("BATCH", flush=True)
        time.sleep(0.1)
        return real_matrix(self, batch)

    InputContract.matrix = announced
    res = Resources.from_settings(Settings.from_env())
    spec = dataclasses.replace(load_spec("churn"), batch_size=50, shards=1)
    model = res.registry.resolve("churn", "champion")
    validation = ValidationRef(**json.loads(sys.argv[2]))
    score.score_partition(res, spec, dt.date.fromisoformat(sys.argv[1]), model, validation, "killed-run")
    print("DONE", flush=True)
    """
)


def predictions(warehouse):
    return warehouse.query("select customer_id, score, scoring_run_id from predictions.churn_scores order by 1").to_pylist()


def test_a_scoring_process_killed_mid_write_leaves_the_old_rows(settings, spec, warehouse):
    spec = replace(spec, shards=1)
    attempt, validation, _ = score_date(settings, spec)
    model = attempt.model
    before = predictions(warehouse)
    env = {
        **os.environ,
        "BATCHPRED_HOME": str(settings.home),
        "BATCHPRED_WAREHOUSE_URL": settings.warehouse_url,
        "MLFLOW_TRACKING_URI": settings.mlflow_tracking_uri,
    }
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, AS_OF.isoformat(), json.dumps(to_xcom(validation))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
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
    retried = score_partition(resources(settings), spec, AS_OF, model, validation, "retry")
    after = predictions(warehouse)
    assert retried.rows_scored == len(after) == len(before)
    assert {r["scoring_run_id"] for r in after} == {"retry"}
    assert [(r["customer_id"], r["score"]) for r in after] == [(r["customer_id"], r["score"]) for r in before]


def test_an_extra_feature_column_changes_nothing(settings, spec, warehouse):
    score_date(settings, spec)
    before = [(r["customer_id"], r["score"]) for r in predictions(warehouse)]
    warehouse.execute("alter table analytics.churn_features add column shiny_new_feature double precision")
    warehouse.execute("update analytics.churn_features set shiny_new_feature = 42")
    score_date(settings, spec)
    assert [(r["customer_id"], r["score"]) for r in predictions(warehouse)] == before
