"""Airflow's `[core] hostname_callable` for the production test: both Celery workers
run on this one machine, so each reports the name it was started with instead."""

import os
import socket


def hostname() -> str:
    return os.environ.get("BATCHPRED_TEST_WORKER_NAME") or socket.getfqdn()
