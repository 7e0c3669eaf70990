"""Counting a date's profile while scoring, without a warehouse: the same bins as a binary search
of the exact cuts, on every edge, and shards that add up to the whole. That the warehouse
counts the same rows alike is tests/integration/test_profile.py."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from pipelines.config.contract import Feature, InputContract
from pipelines.domain.reference import Calibration, FeatureReference, ScoreReference, TrainingReference, Validation, next_up
from pipelines.scoring import profile


def by_search(values: np.ndarray, cuts) -> list[int]:
    """The bins by definition: the finite values by a binary search of the cuts as doubles
    (cut_j <= v < cut_j+1), then ±inf, then NaN."""
    values = np.asarray(values, dtype=np.float32)
    finite = values[np.isfinite(values)].astype(np.float64)
    index = np.searchsorted(np.asarray(cuts, dtype=np.float64), finite, side="right")
    counts = np.bincount(index, minlength=len(cuts) + 1).tolist()
    return [*counts, int(np.isinf(values).sum()), int(np.isnan(values).sum())]


EDGES = [0.0, -0.0, 1.0, next_up(1.0), float(np.nextafter(np.float32(1), np.float32(0))), np.inf, -np.inf, np.nan,
         float(np.finfo(np.float32).max), -float(np.finfo(np.float32).max), 1e-45, -1e-45, 2.5, 7.0]  # fmt: skip


@pytest.mark.parametrize(
    "cuts",
    [
        (1.0, next_up(1.0), 2.5),  # a value with a bin of its own, = 1
        (0.0, float(np.nextafter(np.float32(0), np.float32(1)))),  # zero alone, as a dominant zero gets
        (1.00000005, 2.5),  # a cut float32 cannot hold (between 1 and the next float32): an older reference's
        (-1e39, 1e39),  # cuts beyond float32's range
        (float(np.finfo(np.float32).max),),
        (),
    ],
)
def test_the_counts_are_those_of_a_binary_search_of_the_exact_cuts(cuts):
    rng = np.random.default_rng(0)
    values = np.concatenate([np.asarray(EDGES, dtype=np.float32), rng.normal(1, 2, 5000).astype(np.float32)])
    with np.errstate(over="ignore"):  # a cut beyond float32's range is an infinity as a value
        values = np.concatenate([values, np.asarray(cuts, dtype=np.float64).astype(np.float32)])  # each cut as a value
    counts, total = profile.numeric_counts(values, profile.float32_cuts(cuts))
    assert counts == by_search(values, cuts)
    # The sum of the finite values, within what summing in any order may round (±float32 max cancel).
    finite = values[np.isfinite(values)].astype(np.float64)
    assert abs(total - math.fsum(finite)) <= 1e-12 * np.abs(finite).sum()


def test_a_cut_float32_cannot_hold_splits_where_the_double_does():
    # 1.00000005 lies between float32 1.0 and the next float32: 1.0 is below it, the next one above.
    assert profile.float32_cuts([1.00000005])[0] == np.float32(next_up(1.0))
    counts, _ = profile.numeric_counts(np.asarray([1.0, next_up(1.0)], dtype=np.float32), profile.float32_cuts([1.00000005]))
    assert counts == [1, 1, 0, 0]


def test_no_finite_value_sums_to_nothing_and_every_row_is_counted_once():
    counts, total = profile.numeric_counts(np.asarray([np.nan, np.inf, -np.inf, np.nan], np.float32), profile.float32_cuts([0]))
    assert counts == [0, 0, 2, 2] and total == 0.0


def test_categories_are_counted_exactly_unlisted_and_null_apart():
    values = pa.chunked_array([["basic", "gold", None, "basic"], ["", "Basic", "premium", None]])
    assert profile.categorical_counts(values, ("basic", "standard", "premium")) == [2, 0, 1, 3, 2]


def reference(cuts=(0.5, 1.5)) -> TrainingReference:
    return TrainingReference(
        features={
            "x": FeatureReference("x", "numeric", cuts, (), (1,) * (len(cuts) + 3), 1, 0.0, 1.0, 1.0),
            "c": FeatureReference("c", "categorical", (), ("a", "b"), (1, 1, 1, 1), 1, 0.0),
        },
        effective_rows=1,
        score=ScoreReference((0.5,), (1, 1, 0, 0), 1, 1, 0.5, 0.5, 0.5),
        calibration=Calibration((), ()),
        validation=Validation({"auc": 0.5}, 1, 0, 0.0, 0.5, 0.0),
        importance={"x": 0.5, "c": 0.5},
        attribution={},
    )


def batch_of(x, c):
    return pa.record_batch({"id": pa.array(range(len(x)), pa.int64()), "x": pa.array(x, pa.float64()), "c": pa.array(c)})


CONTRACT = InputContract((("id", "int64"),), (Feature("x", "numeric"), Feature("c", "categorical", ("a", "b"))))


def counted(batches, scores) -> profile.ProfileCounter:
    counter = profile.ProfileCounter(reference(), CONTRACT)
    for batch, s in zip(batches, scores, strict=True):
        counter.add_features(batch, CONTRACT.matrix(batch))
        counter.add_scores(np.asarray(s, np.float32))
    return counter


def test_batches_and_shards_add_up_to_the_whole_date():
    whole = batch_of([0.2, 0.5, None, float("nan"), float("inf"), 1.5, 3.0], ["a", "b", None, "z", "a", "a", "b"])
    scores = [0.1, 0.5, 0.9, 0.2, 0.6, 0.7, 0.4]
    one = counted([whole], [scores]).profile("run")
    assert one.counts == {"x": [1, 1, 2, 1, 2], "c": [3, 2, 1, 1], "score": [3, 4, 0, 0]}
    assert one.rows == 7 and one.means["x"] == pytest.approx((0.2 + 0.5 + 1.5 + 3.0) / 4) and "c" not in one.means
    # Two batches in one shard, and two shards staged apart, give the same profile.
    assert counted([whole.slice(0, 3), whole.slice(3)], [scores[:3], scores[3:]]).profile("run") == one
    staged = [
        {"shard": shard, **row}
        for shard, (part, s) in enumerate([(whole.slice(0, 4), scores[:4]), (whole.slice(4), scores[4:])])
        for row in counted([part], [s]).staged_rows()
    ]
    merged = profile.merged(reference(), staged, 2, "run")
    assert merged is not None and merged.counts == one.counts and merged.rows == one.rows
    assert merged.means == pytest.approx(one.means, rel=1e-15)
    # A shard that staged nothing (or a part of its bins) leaves the date to the warehouse.
    assert profile.merged(reference(), [r for r in staged if r["shard"] == 0], 2, "run") is None
    assert profile.merged(reference(), staged[1:], 2, "run") is None


def test_a_profile_that_misses_validated_rows_is_refused():
    counter = counted([batch_of([1.0], ["a"])], [[0.5]])
    assert len(counter.rows_of(1, "run")) == 5 + 4 + 4  # every bin of x, c and the score
    with pytest.raises(Exception, match="counted 1 feature rows, but validation counted 2"):
        counter.rows_of(2, "run")
