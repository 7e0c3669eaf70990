"""URLs and messages are shown without their secrets (tests/integration/test_secrets.py checks
that none reaches a log line, an error message, a table or a report)."""

import pytest

from pipelines.domain import redact

PATH_TOKEN = "T0PATHSECRET/B0/x9PathToken"
QUERY_TOKEN = "Q1tokenVALUE77"
HOOK_PASSWORD = "Pw4hookUSER55"
WAREHOUSE_PASSWORD = "Pw4warehouseDB66"
SECRETS = (PATH_TOKEN, QUERY_TOKEN, HOOK_PASSWORD, WAREHOUSE_PASSWORD)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"https://hooks.example.com/services/{PATH_TOKEN}", "https://hooks.example.com/***"),
        (f"https://hooks.example.com/hook?token={QUERY_TOKEN}&channel=x", "https://hooks.example.com/***?***"),
        (f"http://hookuser:{HOOK_PASSWORD}@127.0.0.1:8080", "http://hookuser:***@127.0.0.1:8080"),
        (f"postgresql://bp:{WAREHOUSE_PASSWORD}@db:5432/wh?sslmode=require", "postgresql://bp:***@db:5432/wh?***"),
        ("duckdb:////data/warehouse.duckdb", "duckdb:////data/warehouse.duckdb"),
    ],
)
def test_a_url_is_shown_without_its_secrets(url, shown):
    assert redact.url(url) == shown
    assert redact.text(f"Server error '500' for url '{url}'") == f"Server error '500' for url '{shown}'"


def test_a_registered_password_is_hidden_even_without_its_url():
    redact.register(f"postgresql://bp:{WAREHOUSE_PASSWORD}@db:5432/wh")
    assert redact.text(f'FATAL: password "{WAREHOUSE_PASSWORD}" was refused; sslmode require') == (
        'FATAL: password "***" was refused; sslmode require'
    )
