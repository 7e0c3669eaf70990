"""A version's training reference, as stored with the version (MLflow artifact
`training_reference.json`): the format it is written in, the bins drift is measured on,
and reading older formats (`TrainingReference.from_dict`). Computing one is
`pipelines.monitoring.reference`."""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

FORMAT = 3  # 3: an infinite bin, dominant-value bins, effective sample sizes (`upgrade` reads 2)


@dataclass(frozen=True)
class Bins:
    """How one feature (or the score) is binned: numeric `cuts` c1 < ... < ck give bins
    (-inf, c1), [c1, c2), ..., [ck, inf) of the finite values, then one bin for +inf and
    -inf; categorical `categories` give one bin per value and one for any other value.
    Every feature also has a null bin, last. A bin [c, next float32 after c) holds exactly
    the value c (values are read as float32): that is how a dominant value gets its own bin."""

    name: str
    kind: str  # "numeric" | "categorical" | "score"
    cuts: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def labels(self) -> list[str]:
        if self.kind == "categorical":
            return [*self.categories, "(other)", "(null)"]
        edges = [-math.inf, *self.cuts, math.inf]
        pairs = zip(edges, edges[1:], strict=False)
        finite = [f"= {_fmt(lo)}" if _point(lo, hi) else f"[{_fmt(lo)}, {_fmt(hi)})" for lo, hi in pairs]
        return [*finite, "(±inf)", "(null)"]

    def bounds(self) -> list[tuple[float | None, float | None]]:
        """(lower, upper) of each numeric bin (None for the open ends, the infinite and the null bin)."""
        if self.kind == "categorical":
            return [(None, None)] * (len(self.categories) + 2)
        edges = [None, *self.cuts, None]
        return [*zip(edges, edges[1:], strict=False), (None, None), (None, None)]


def _point(lower: float, upper: float) -> bool:
    return math.isfinite(lower) and upper == next_up(lower)


def next_up(value: float) -> float:
    return float(np.nextafter(np.float32(value), np.float32(np.inf)))


def _fmt(value: float) -> str:
    return "inf" if value == math.inf else "-inf" if value == -math.inf else f"{value:.6g}"


def upgrade(reference: dict[str, Any] | None) -> dict[str, Any] | None:
    """A format-2 reference read as format 3: an empty infinite bin (format 2 binned no
    infinity apart), and its row counts as effective sample sizes. Other formats as they are."""
    if not reference or reference.get("format") != 2:
        return reference
    numeric = [f for f in reference["features"].values() if f["kind"] != "categorical"] + [reference["score"]]
    for entry in numeric:
        entry["counts"] = [*entry["counts"][:-1], 0, entry["counts"][-1]]
    reference["score"].setdefault("effective_rows", reference["score"]["rows"])
    rows = max((f["rows"] for f in reference["features"].values()), default=0)
    return {**reference, "format": FORMAT, "effective_rows": rows}


@dataclass(frozen=True)
class FeatureReference:
    """One feature in the training data: its bins, the training rows in each (`Bins.labels`
    order), its rows and null share, and (numeric features only) the mean and standard
    deviation of its finite values."""

    name: str
    kind: str  # "numeric" | "categorical"
    cuts: tuple[float, ...]
    categories: tuple[str, ...]
    counts: tuple[int, ...]
    rows: int
    null_share: float | None
    mean: float | None = None
    std: float | None = None

    @property
    def bins(self) -> Bins:
        return Bins(self.name, self.kind, self.cuts, self.categories)

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> FeatureReference:
        return cls(
            name,
            d["kind"],
            tuple(d["cuts"]),
            tuple(d["categories"]),
            tuple(d["counts"]),
            d["rows"],
            d["null_share"],
            d.get("mean"),
            d.get("std"),
        )

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {
            "kind": self.kind,
            "cuts": list(self.cuts),
            "categories": list(self.categories),
            "counts": list(self.counts),
            "rows": self.rows,
            "null_share": self.null_share,
        }
        if self.kind != "categorical":  # a categorical feature has no mean
            values |= {"mean": self.mean, "std": self.std}
        return values


@dataclass(frozen=True)
class ScoreReference:
    """The scores of the validation window: their bins and the rows in each, the effective
    sample size (distinct entities), their mean, and the share at or above the version's
    action threshold."""

    cuts: tuple[float, ...]
    counts: tuple[int, ...]
    rows: int
    effective_rows: int
    mean: float
    share_above_threshold: float
    action_threshold: float

    @property
    def bins(self) -> Bins:
        return Bins("score", "score", self.cuts)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScoreReference:
        return cls(
            tuple(d["cuts"]),
            tuple(d["counts"]),
            d["rows"],
            d["effective_rows"],
            d["mean"],
            d["share_above_threshold"],
            d["action_threshold"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "cuts": list(self.cuts),
            "counts": list(self.counts),
            "rows": self.rows,
            "effective_rows": self.effective_rows,
            "mean": self.mean,
            "share_above_threshold": self.share_above_threshold,
            "action_threshold": self.action_threshold,
        }


@dataclass(frozen=True)
class Calibration:
    """The isotonic calibration map of the validation window, as its breakpoints."""

    x: tuple[float, ...]
    y: tuple[float, ...]


@dataclass(frozen=True)
class Validation:
    """The validation window: the training run's metrics (`auc` among them), its rows and
    positives, and the expected AUC of its calibrated scores with its sampling error."""

    metrics: Mapping[str, float]
    rows: int
    positives: int
    positive_rate: float
    expected_auc: float
    sampling_error: float

    @property
    def auc(self) -> float:
        return self.metrics["auc"]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Validation:
        own = ("rows", "positives", "positive_rate", "expected_auc", "sampling_error")
        metrics = {k: v for k, v in d.items() if k not in own}
        return cls(metrics, *(d[k] for k in own))

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.metrics,
            "rows": self.rows,
            "positives": self.positives,
            "positive_rate": self.positive_rate,
            "expected_auc": self.expected_auc,
            "sampling_error": self.sampling_error,
        }


@dataclass(frozen=True)
class TrainingReference:
    """A version's training reference (format `FORMAT`): its features in the contract's order,
    the training data's effective sample size (distinct entities), the validation window's
    scores, calibration map and metrics, and the feature importances (shares of the total gain)
    and mean |contributions| over the validation window (`attribution`)."""

    features: Mapping[str, FeatureReference]
    effective_rows: int
    score: ScoreReference
    calibration: Calibration
    validation: Validation
    importance: Mapping[str, float]
    attribution: Mapping[str, float]

    @staticmethod
    def readable(stored: Mapping[str, Any] | None) -> bool:
        """Whether monitoring can read this stored reference: format 3, or 2 (versions trained
        before batchpred kept one cannot)."""
        return stored is not None and stored.get("format") in (2, FORMAT)

    def feature_bins(self) -> list[Bins]:
        """The drift bins of every feature, in the reference's order."""
        return [f.bins for f in self.features.values()]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainingReference:
        """Read a stored reference: format 3, or format 2 read as 3 (`upgrade`). Any other
        format (a version trained before batchpred kept one) is refused with ValueError."""
        if not TrainingReference.readable(d):
            raise ValueError(f"a training reference of format {d.get('format') if d else None}: batchpred reads 2 and {FORMAT}")
        upgraded = upgrade(copy.deepcopy(dict(d)))  # upgrade changes the dict it is given
        assert upgraded is not None  # d is not empty
        return cls(
            features={name: FeatureReference.from_dict(name, f) for name, f in upgraded["features"].items()},
            effective_rows=upgraded["effective_rows"],
            score=ScoreReference.from_dict(upgraded["score"]),
            calibration=Calibration(tuple(upgraded["calibration"]["x"]), tuple(upgraded["calibration"]["y"])),
            validation=Validation.from_dict(upgraded["validation"]),
            importance=dict(upgraded["importance"]),
            attribution=dict(upgraded.get("attribution") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The reference as stored (`training_reference.json`), key for key."""
        return {
            "format": FORMAT,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "effective_rows": self.effective_rows,
            "score": self.score.to_dict(),
            "calibration": {"x": list(self.calibration.x), "y": list(self.calibration.y)},
            "validation": self.validation.to_dict(),
            "importance": dict(self.importance),
            "attribution": dict(self.attribution),
        }
