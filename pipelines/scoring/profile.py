"""A date's profile: every feature's (and the score's) rows in each bin of the version's
training reference, and the mean of each numeric one's finite values.

Drift compares a date's profile with the reference's (`pipelines.monitoring.drift`). The
scorer already holds every batch of the date in memory, so it counts the profile as it
scores (`ProfileCounter`: a few vectorised comparisons per feature and batch, kept as one
small list of counts per feature however many rows), and publishes it with the
predictions, in the transaction that replaces them (`monitoring.feature_profiles`, with
the scoring run's id). Monitoring the date then reads it instead of scanning the partition
again. A date scored before batchpred did this, or by another route, is binned by the
warehouse (`pipelines.adapters.warehouse.health.histogram`). Both count exactly alike:

- a number is read as the model reads it, float64 then float32: NaN is null, and a double
  beyond float32's range is an infinity;
- a finite value v is in bin j when cut_j <= v < cut_j+1, compared exactly (a cut float32
  cannot hold is compared as the double it is); +inf and -inf are in the infinite bin, null
  and NaN in the null bin;
- text is compared exactly with the reference's categories: an unlisted value is in
  "(other)", null in "(null)";
- the features are those of every row of the validated partition, the rows validation
  quarantined included (the warehouse counts them too: they are read apart, and are few);
  the score is that of every scored row.

The means are sums of float64 in another order than the warehouse's, so they may differ
from its in the last bits; the counts are identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from pipelines.domain.errors import PartitionMismatch

if TYPE_CHECKING:
    import pyarrow as pa

    from pipelines.config.contract import InputContract
    from pipelines.domain.reference import Bins, TrainingReference

SCORE = "score"  # the prediction, as a pseudo-feature


@dataclass(frozen=True)
class Profile:
    """A date's profile: `rows` in the feature partition, each feature's (and the score's)
    rows per bin (`Bins.labels` order: numeric ones end with the infinite bin, then the null
    bin), the means of the finite values (numeric features and the score), and the scoring
    run whose predictions it describes (None when the date has none)."""

    rows: int
    counts: dict[str, list[int]]
    means: dict[str, float | None]
    scoring_run_id: str | None = None


@dataclass(frozen=True)
class ProfileBin:
    """One bin of a feature's (or the score's) profile on a date, beside the training
    reference's (a row of monitoring.feature_profiles). `mean` is the feature's, repeated on
    each of its bins."""

    feature: str
    kind: str
    bin: int
    label: str
    lower: float | None
    upper: float | None
    rows: int
    reference_rows: int
    mean: float | None
    scoring_run_id: str | None

    def row(self) -> dict[str, Any]:
        return asdict(self)


def score_bins(reference: TrainingReference) -> Bins:
    return reference.score.bins


def profile_bins(reference: TrainingReference, profile: Profile) -> list[ProfileBin]:
    """The monitoring.feature_profiles rows of one date, each bin beside the training reference's."""
    found = []
    for b in [*reference.feature_bins(), score_bins(reference)]:
        name = SCORE if b.kind == "score" else b.name
        reference_counts = reference.score.counts if name == SCORE else reference.features[name].counts
        mean = profile.means.get(name) if b.kind != "categorical" else None
        for j, (label, (lower, upper)) in enumerate(zip(b.labels, b.bounds(), strict=True)):
            found.append(
                ProfileBin(
                    name, b.kind, j, label, lower, upper, profile.counts[name][j], reference_counts[j], mean,
                    profile.scoring_run_id,
                )  # fmt: skip
            )
    return found


def float32_cuts(cuts: Sequence[float]) -> np.ndarray:
    """Each cut as the smallest float32 at or above it: for every float32 x, x >= cut exactly
    when x >= that float32. So values are compared as float32, in one pass each, and a cut
    float32 cannot hold (an older reference's) still splits them where the double does."""
    wanted = np.asarray(cuts, dtype=np.float64)
    with np.errstate(over="ignore"):  # a cut beyond float32's range becomes ±inf, which splits the same
        found = wanted.astype(np.float32)
    below = found.astype(np.float64) < wanted
    found[below] = np.nextafter(found[below], np.float32(np.inf))
    return found


def numeric_counts(values: np.ndarray, cuts: np.ndarray) -> tuple[list[int], float]:
    """Rows per bin of `Bins(cuts=...)` (the finite bins, the infinite bin, the null bin) of
    float32 `values`, with `cuts` from `float32_cuts`; and the sum of the finite values, in float64.

    A bin's count is the number of values at or above its lower cut less those at or above
    its upper one: one comparison per cut and value (vectorised, no per-row bin index), and
    no sort, whatever the number of rows."""
    x = np.asarray(values, dtype=np.float32)
    mark = np.empty(x.shape, dtype=bool)
    nulls = int(np.count_nonzero(np.isnan(x, out=mark)))
    # What is summed: the values with zeros for the nulls (cheaper than nansum, which looks for them again).
    summed = x
    if nulls:
        summed = x.copy()
        np.copyto(summed, np.float32(0), where=mark)
    infinite = int(np.count_nonzero(np.isinf(x, out=mark)))
    positive = int(np.count_nonzero(np.equal(x, np.float32(np.inf), out=mark))) if infinite else 0
    finite = x.size - nulls - infinite
    # Finite values at or above each cut: +inf is at or above every cut, -inf only at or above -inf.
    above = [finite]
    for cut in cuts:
        at_or_above = int(np.count_nonzero(np.greater_equal(x, cut, out=mark))) - positive
        above.append(at_or_above - (infinite - positive if cut == -np.inf else 0))
    above.append(0)
    counts = [a - b for a, b in zip(above, above[1:], strict=False)]
    if not finite:
        total = 0.0
    elif infinite:  # rare: summed without them
        total = float(np.add.reduce(summed, dtype=np.float64, where=np.isfinite(summed)))
    else:
        total = float(summed.sum(dtype=np.float64))
    return [*counts, infinite, nulls], total


def categorical_counts(values: pa.Array | pa.ChunkedArray, categories: Sequence[str]) -> list[int]:
    """Rows per category, then of any other value, then nulls, of Arrow text `values`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    codes = pc.index_in(values, value_set=pa.array(list(categories), pa.string())).drop_null()
    listed = np.bincount(np.asarray(codes.to_numpy(), dtype=np.intp), minlength=len(categories))
    nulls = values.null_count
    return [*(int(c) for c in listed), len(values) - int(listed.sum()) - nulls, nulls]


class ProfileCounter:
    """Counts a date's profile batch by batch while it is scored: a list of counts and a sum
    per feature and for the score, so memory does not grow with the rows."""

    def __init__(self, reference: TrainingReference, contract: InputContract) -> None:
        self.reference = reference
        self.bins = reference.feature_bins()
        self.columns = {name: i for i, name in enumerate(contract.feature_names)}
        self.cuts = {b.name: float32_cuts(b.cuts) for b in [*self.bins, score_bins(reference)] if b.kind != "categorical"}
        self.rows = 0
        # Keyed by name: the score's bins are named "score" (SCORE).
        self.counts = {b.name: [0] * len(b.labels) for b in [*self.bins, score_bins(reference)]}
        self.sums: dict[str, float] = dict.fromkeys(self.cuts, 0.0)

    @classmethod
    def of(cls, reference: TrainingReference | None, contract: InputContract) -> ProfileCounter | None:
        """A counter for the version's reference, or None when there is none to count against
        (a version trained before batchpred kept one) or it names a numeric feature the
        contract does not read (monitoring then bins the date from the warehouse)."""
        if reference is None:
            return None
        numeric = [b.name for b in reference.feature_bins() if b.kind != "categorical"]
        if any(name not in contract.feature_names for name in numeric):
            return None
        return cls(reference, contract)

    def add_features(self, batch: pa.RecordBatch | pa.Table, matrix: np.ndarray) -> None:
        """Count one batch's features: numeric ones from the model's `matrix` (float32, as
        scored), categorical ones from the batch's text."""
        self.rows += batch.num_rows
        for b in self.bins:
            if b.kind == "categorical":
                found = categorical_counts(batch.column(b.name), b.categories)
            else:
                found, total = numeric_counts(matrix[:, self.columns[b.name]], self.cuts[b.name])
                self.sums[b.name] += total
            self.counts[b.name] = [a + c for a, c in zip(self.counts[b.name], found, strict=True)]

    def add_scores(self, scores: np.ndarray) -> None:
        found, total = numeric_counts(scores, self.cuts[SCORE])
        self.sums[SCORE] += total
        self.counts[SCORE] = [a + c for a, c in zip(self.counts[SCORE], found, strict=True)]

    def profile(self, scoring_run_id: str | None = None) -> Profile:
        means: dict[str, float | None] = {}
        for name, total in self.sums.items():
            finite = sum(self.counts[name][:-2])  # the infinite and the null bin are not averaged
            means[name] = total / finite if finite else None
        return Profile(self.rows, {name: list(c) for name, c in self.counts.items()}, means, scoring_run_id)

    def staged_rows(self) -> list[dict[str, Any]]:
        """This shard's part of the date, as rows of analytics.<model>_profile_staging (without
        their key): every bin's rows, and the feature's sum of finite values on each bin."""
        return [
            {"feature": name, "bin": j, "rows": n, "finite_sum": self.sums.get(name)}
            for name, counts in self.counts.items()
            for j, n in enumerate(counts)
        ]

    def rows_of(self, expected_rows: int, scoring_run_id: str) -> list[dict[str, Any]]:
        """The monitoring.feature_profiles rows of the counted date. Refuses (PartitionMismatch)
        a profile that did not count `expected_rows` feature rows (the validated partition)."""
        if self.rows != expected_rows:
            raise PartitionMismatch(
                f"the profile of the date counted {self.rows} feature rows, but validation counted {expected_rows} "
                "(did the features change since it ran?); nothing was published, the previous predictions stay. "
                "Run the date again"
            )
        return [b.row() for b in profile_bins(self.reference, self.profile(scoring_run_id))]


def merged(reference: TrainingReference, staged: list[dict[str, Any]], shards: int, scoring_run_id: str) -> Profile | None:
    """The date's profile from the rows its `shards` shards staged (`ProfileCounter.staged_rows`,
    each with its `shard`): counts and sums added up, means from the sums. None unless every
    shard staged every bin of the reference (a shard that stored none leaves the date to be
    binned by the warehouse)."""
    shapes = {b.name: len(b.labels) for b in [*reference.feature_bins(), score_bins(reference)]}
    counts = {name: [0] * size for name, size in shapes.items()}
    sums: dict[str, float] = {}
    seen: dict[int, int] = {}
    for r in staged:
        name, j = r["feature"], r["bin"]
        if name not in shapes or not 0 <= j < shapes[name]:
            return None
        counts[name][j] += r["rows"]
        seen[r["shard"]] = seen.get(r["shard"], 0) + 1
        if j == 0 and r["finite_sum"] is not None:  # the same on each of the feature's bins: taken once
            sums[name] = sums.get(name, 0.0) + r["finite_sum"]
    if seen != dict.fromkeys(range(shards), sum(shapes.values())):
        return None
    means: dict[str, float | None] = {}
    for b in [*reference.feature_bins(), score_bins(reference)]:
        if b.kind != "categorical":
            finite = sum(counts[b.name][:-2])
            means[b.name] = sums.get(b.name, 0.0) / finite if finite else None
    first = next(iter(shapes))
    return Profile(sum(counts[first]), counts, means, scoring_run_id)
