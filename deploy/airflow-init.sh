#!/usr/bin/env bash
# One-shot init for the compose stack: migrate Airflow's metadata, write the admin
# login, create the warehouse pool, set up the warehouse schemas and the read-only
# dashboard role, and optionally load the demo business and train a first model.
set -euo pipefail

airflow db migrate

# The Simple auth manager reads {"user": "password"} from this file; the password
# comes from .env and is never printed.
python - <<'PY'
import json, os, pathlib
path = pathlib.Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({"admin": os.environ["AIRFLOW_ADMIN_PASSWORD"]}))
path.chmod(0o600)
PY

airflow pools set batchpred_warehouse "${BATCHPRED_WAREHOUSE_POOL_SLOTS:-8}" "Warehouse writers running at once"

BATCHPRED_BI_PASSWORD="${BI_PASSWORD}" batchpred setup-warehouse --bi-role "${BI_ROLE:-dashboards}"

if [ "${LOAD_DEMO_DATA:-0}" = "1" ]; then
  batchpred generate
  batchpred train churn
fi
