"""A version's training reference, as stored with the version (MLflow artifact
`training_reference.json`): the format it is written in, the bins drift is measured on,
and reading older formats. Computing one is `pipelines.monitoring.reference`."""

from __future__ import annotations

import math
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


def bins_of(reference: dict[str, Any]) -> list[Bins]:
    """The drift bins of every feature, in the reference's order."""
    return [Bins(name, f["kind"], tuple(f["cuts"]), tuple(f["categories"])) for name, f in reference["features"].items()]


def usable(reference: dict[str, Any] | None) -> bool:
    """Whether monitoring can read this reference (versions trained before it existed cannot)."""
    return reference is not None and bool(reference) and reference.get("format") == FORMAT


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
