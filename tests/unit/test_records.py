"""Records cross Airflow's XCom as plain JSON and come back as the same typed values,
decoded by their type hints (nested records, tuples, dates and datetimes included)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pipelines.domain.records import Attempt, PinnedModel, Published, ShadowFailure, ShardResult, from_xcom, to_xcom

CHAMPION = PinnedModel("churn", 3, "run-3", "champion")
CHALLENGER = PinnedModel("churn", 4, "run-4", "challenger")


def through_xcom(record):
    return from_xcom(type(record), json.loads(json.dumps(to_xcom(record))))


def test_an_attempt_comes_back_with_its_pinned_model_and_shadows():
    attempt = Attempt(
        scoring_run_id="r1",
        model_name="churn",
        as_of_date=dt.date(2026, 1, 31),
        alias="champion",
        model=CHAMPION,
        airflow_run_id="manual__1",
        started_at=dt.datetime(2026, 2, 1, 6, 30, tzinfo=dt.UTC),
        shadows=(CHALLENGER,),
        shadow_skipped=("@other is the champion's version",),
    )
    back = through_xcom(attempt)
    assert back == attempt
    assert type(back.as_of_date) is dt.date and back.started_at.tzinfo is not None
    assert back.pinned == CHAMPION and back.shadows[0] == CHALLENGER


def test_an_attempt_before_plan_pinned_a_version_has_none():
    attempt = Attempt("r1", "churn", dt.date(2026, 1, 31), "champion", None, None, dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    assert through_xcom(attempt).model is None
    with pytest.raises(ValueError, match="no pinned model version"):
        attempt.pinned  # noqa: B018


def test_shadow_failures_are_values_not_messages():
    failure = ShadowFailure("challenger", 4, "ValueError: boom")
    result = ShardResult(0, 10, 10, (failure,), [0.5, 0.25], 10)
    back = through_xcom(result)
    assert back.shadow_failures == (failure,) and back.shadow_failures[0].alias == "challenger"


def test_published_lists_come_back_as_tuples():
    published = Published("r1", dt.date(2026, 1, 31), 3, 10, 0, "predictions.churn_scores", ("x",), ("y",), "champion")
    assert through_xcom(published) == published


def test_an_unknown_key_is_refused():
    with pytest.raises(ValueError, match="no field"):
        from_xcom(PinnedModel, {"name": "churn", "version": 3, "run_id": "r", "alias": None, "versoin": 4})
