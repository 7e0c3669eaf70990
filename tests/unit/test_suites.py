"""Expectation suites that are refused when they are read, before any data is checked."""

import json

import pytest

from pipelines.adapters.validate import load_suite
from pipelines.domain.errors import SpecError


def test_mostly_on_an_expectation_that_cannot_name_its_rows_is_refused(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps(
            {
                "expectations": [
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "plan"}},
                    {
                        "type": "expect_compound_columns_to_be_unique",
                        "kwargs": {"column_list": ["customer_id", "plan"], "mostly": 0.9},
                    },
                ]
            }
        )
    )
    with pytest.raises(SpecError, match=r"expectation #2 \(expect_compound_columns_to_be_unique\) sets mostly=0.9"):
        load_suite(suite)


def test_mostly_on_a_table_level_expectation_is_refused(tmp_path):
    suite = tmp_path / "suite.json"
    suite.write_text(
        json.dumps({"expectations": [{"type": "expect_column_mean_to_be_between", "kwargs": {"column": "x", "min_value": 0}}]})
    )
    assert len(load_suite(suite).expectations) == 1  # no mostly: fine
    table_level = {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "x", "min_value": 0, "mostly": 0.9}}
    suite.write_text(json.dumps({"expectations": [table_level]}))
    with pytest.raises(SpecError, match=r"(?s)expectation #1 \('expect_column_mean_to_be_between'\) is invalid.*mostly"):
        load_suite(suite)  # a mean has no rows to tolerate: GX itself refuses the key, and batchpred names the entry
    suite.write_text(
        json.dumps(
            {"expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "customer_id", "mostly": 0.9}}]}
        )
    )
    [unique] = load_suite(suite).expectations  # GX names every member of a duplicated group: accepted
    assert unique.mostly == 0.9


def test_a_misspelled_expectation_is_an_error_not_skipped(tmp_path):
    path = tmp_path / "suite.json"
    path.write_text(
        json.dumps({"name": "s", "expectations": [{"type": "expect_column_values_to_be_betwen", "kwargs": {"column": "x"}}]})
    )
    with pytest.raises(SpecError, match="expectation #1"):
        load_suite(path)
