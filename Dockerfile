# One image for every batchpred service: Airflow components, the MLflow server, the init job.
FROM python:3.11-slim

# UV_COMPILE_BYTECODE: the venv is read-only to the services' user, so without .pyc
# files compiled at build time every task process would compile its imports again.
ENV PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/app/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False

RUN apt-get update \
 && apt-get install -y --no-install-recommends curl libpq5 \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir uv

WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY . .
RUN uv sync --locked --no-dev

RUN useradd --create-home --uid 50000 batchpred \
 && mkdir -p /opt/airflow /mlartifacts \
 && chown -R batchpred /opt/airflow /mlartifacts /app
USER batchpred
