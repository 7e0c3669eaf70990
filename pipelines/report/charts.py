"""The report's charts: matplotlib figures rendered to inline SVG strings.

Each function takes rows as the monitoring tables hold them and returns one `<svg>`
element (text kept as text, so the page stays small and searchable). Call them inside
`style()`, which selects the non-interactive Agg backend and the report's look.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

CHAMPION, CHALLENGER, REFERENCE, BAND, ALERT = "#1f5f99", "#d9822b", "#9aa5b1", "#c6dbef", "#c23030"
_ids = itertools.count()


@contextmanager
def style() -> Iterator[None]:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    with plt.rc_context(
        {
            "svg.fonttype": "none",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.color": "#e5e8eb",
            "figure.dpi": 96,
        }
    ):
        yield


def _svg(fig: Any, name: str) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    # A salt per chart keeps the ids inside each SVG unique on the page.
    with plt.rc_context({"svg.hashsalt": f"{name}-{next(_ids)}"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG is inline


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height), layout="constrained")


def _dates(ax: Any, start: dt.date, end: dt.date) -> None:
    import matplotlib.dates as mdates

    # A day of room at each end: the first and last points' markers are drawn whole.
    ax.set_xlim(start - dt.timedelta(days=1), end + dt.timedelta(days=1))
    # A few days' window gets a tick a day; AutoDateLocator has no interval for so short a span.
    locator = mdates.DayLocator() if (end - start).days <= 10 else mdates.AutoDateLocator(minticks=3, maxticks=7)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def sparkline(points: Sequence[tuple[dt.date, float | None]], start: dt.date, end: dt.date, alert: float | None) -> str:
    """PSI per date over the window (scaled to its own range), with the alert threshold as a
    faint line when the series reaches near it."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1.6, 0.35))
    # Any: matplotlib's stubs take floats where its units machinery takes dates (matplotlib#27140, #25676).
    ax: Any = fig.add_axes((0, 0, 1, 1))
    xs = [p[0] for p in points if p[1] is not None]
    ys = [p[1] for p in points if p[1] is not None]
    ax.plot(xs, ys, color=CHAMPION, linewidth=1)
    if xs:
        ax.plot(xs[-1:], ys[-1:], "o", color=CHAMPION, markersize=2.5, clip_on=False)
    top = max([*ys, 0.01]) * 1.2  # scaled to the series, so its shape shows
    if alert is not None and alert <= top:  # the alert line, once the series comes near it
        ax.axhline(alert, color=ALERT, linewidth=0.6, alpha=0.5)
    ax.set_xlim(start - dt.timedelta(days=0.5), end + dt.timedelta(days=1))  # room for the last point's marker
    ax.set_ylim(0, top)
    ax.axis("off")
    return _svg(fig, "spark")


def distribution(feature: str, bins: Sequence[dict[str, Any]], psi: float | None) -> str:
    """Share of rows per bin: the training reference beside the date."""
    fig, ax = _figure(5.2, 2.4)
    ref_total = sum(b["reference_rows"] or 0 for b in bins) or 1
    cur_total = sum(b["rows"] or 0 for b in bins) or 1
    xs = range(len(bins))
    ax.bar(
        [x - 0.2 for x in xs],
        [(b["reference_rows"] or 0) / ref_total for b in bins],
        0.4,
        color=REFERENCE,
        label="training reference",
    )
    ax.bar([x + 0.2 for x in xs], [(b["rows"] or 0) / cur_total for b in bins], 0.4, color=CHAMPION, label="this date")
    ax.set_xticks(
        list(xs),
        [bin_label(b["label"]) for b in bins],
        rotation=45 if len(bins) > 6 else 0,
        ha="right" if len(bins) > 6 else "center",
    )
    ax.set_ylabel("share of rows")
    ax.set_title(f"{feature}" + (f" — PSI {psi:.3f}" if psi is not None else ""), loc="left", fontsize=10)
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, not over them
    ax.grid(axis="x", visible=False)
    return _svg(fig, "dist")


_INTERVAL = re.compile(r"\[(\S+), (\S+)\)")
_POINT = re.compile(r"= (\S+)")


def bin_label(label: str | None) -> str:
    """A bin's label as a tick: numbers to 3 significant digits ("[8.07242e-05, 0.0311)" is
    "8.07e-05–0.0311", an open end "< 3.5" or "≥ 12"), more where a bin's two ends would
    read the same, a category cut at 14 characters."""
    text = "null" if label is None else str(label)
    if interval := _INTERVAL.fullmatch(text):
        lower, upper = (float(v) for v in interval.groups())
        if lower == -math.inf:
            return f"< {_number(upper)}"
        if upper == math.inf:
            return f"≥ {_number(lower)}"
        digits = next((d for d in range(3, 7) if _number(lower, d) != _number(upper, d)), 6)  # ends that differ
        return f"{_number(lower, digits)}–{_number(upper, digits)}"
    if point := _POINT.fullmatch(text):
        return f"= {_number(float(point.group(1)))}"
    return text if len(text) <= 14 else text[:13] + "…"


def _number(value: float, digits: int = 3) -> str:
    """`digits` significant digits; whole thousands written out (1,240 rather than 1.24e+03)."""
    rounded = float(f"{value:.{digits}g}")
    return f"{rounded:,.0f}" if abs(rounded) >= 1000 and rounded == int(rounded) else f"{rounded:.{digits}g}"


def score_trend(rows: Sequence[dict[str, Any]], start: dt.date, end: dt.date) -> str:
    """Mean score and the share at or above the action threshold per date, with the reference's."""
    fig, ax = _figure(7.5, 2.6)
    days = [r["as_of_date"] for r in rows]
    ax.plot(days, [r["share_above_threshold"] for r in rows], color=CHAMPION, marker="o", markersize=3, label="share ≥ threshold")
    ax.plot(days, [r["mean"] for r in rows], color=CHALLENGER, marker="o", markersize=3, label="mean score")
    ref = next((r for r in rows if r["reference_share_above_threshold"] is not None), None)
    if ref:
        ax.axhline(
            ref["reference_share_above_threshold"],
            color=CHAMPION,
            linestyle="--",
            linewidth=1,
            alpha=0.6,
            label="reference share",
        )
        ax.axhline(ref["reference_mean"], color=CHALLENGER, linestyle="--", linewidth=1, alpha=0.6, label="reference mean")
    ax.set_ylim(bottom=0)
    _dates(ax, start, end)
    ax.legend(frameon=False, fontsize=8, ncols=4, loc="upper left", bbox_to_anchor=(0, 1.18))
    return _svg(fig, "scores")


def auc_trend(estimated: Sequence[dict[str, Any]], realized: Sequence[dict[str, Any]], start: dt.date, end: dt.date) -> str:
    """Expected AUC (CBPE) with its band, and realized AUC where labels landed (hollow while provisional)."""
    fig, ax = _figure(7.5, 2.6)
    # A date with no estimate (NULL, with its status) is not drawn.
    banded = [r for r in estimated if None not in (r["expected_auc"], r["expected_auc_lower"], r["expected_auc_upper"])]
    if banded:
        days = [r["as_of_date"] for r in banded]
        ax.fill_between(
            days,
            [r["expected_auc_lower"] for r in banded],
            [r["expected_auc_upper"] for r in banded],
            color=BAND,
            alpha=0.8,
            label="estimate band",
            step="mid",
        )
        if len(banded) < 3:  # too few dates for a filled band to show: the band as error bars
            ax.errorbar(
                days, [r["expected_auc"] for r in banded],
                yerr=[[r["expected_auc"] - r["expected_auc_lower"] for r in banded],
                      [r["expected_auc_upper"] - r["expected_auc"] for r in banded]],
                fmt="none", ecolor=BAND, elinewidth=8, gid="estimate-band",
            )  # fmt: skip
        ax.plot(days, [r["expected_auc"] for r in banded], color=CHAMPION, marker="o", markersize=3, label="estimated AUC")
    if estimated:
        below = next((r["alert_below"] for r in estimated if r["alert_below"] is not None), None)
        if below is not None:
            ax.axhline(below, color=ALERT, linewidth=0.8, linestyle=":", label="alert below")
    for provisional, label in ((False, "realized AUC"), (True, "provisional (labels incomplete)")):
        mine = [r for r in realized if (r["status"] == "provisional") == provisional and r["roc_auc"] is not None]
        if mine:
            ax.plot(
                [r["as_of_date"] for r in mine], [r["roc_auc"] for r in mine], color=CHALLENGER, marker="s", markersize=4,
                linestyle="none", label=label, fillstyle="none" if provisional else "full",
            )  # fmt: skip
    _dates(ax, start, end)
    ax.set_ylabel("ROC AUC")
    if ax.get_legend_handles_labels()[0]:  # not when every date in the window has no estimate
        ax.legend(frameon=False, fontsize=8, ncols=4, loc="upper left", bbox_to_anchor=(0, 1.18))
    return _svg(fig, "auc")


def reliability(bins: Sequence[dict[str, Any]]) -> str:
    """Observed positive rate against mean score per score bin; the diagonal is perfect calibration."""
    fig, ax = _figure(3.6, 3.2)
    ax.plot([0, 1], [0, 1], color=REFERENCE, linestyle="--", linewidth=1)
    used = [b for b in bins if b["rows"]]
    sizes = [max(8.0, 200.0 * b["rows"] / max(x["rows"] for x in used)) for b in used]
    ax.plot([b["mean_score"] for b in used], [b["positive_rate"] for b in used], color=CHAMPION, linewidth=1)
    ax.scatter([b["mean_score"] for b in used], [b["positive_rate"] for b in used], s=sizes, color=CHAMPION, zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("mean score")
    ax.set_ylabel("observed positive rate")
    return _svg(fig, "calibration")


def scatter(pairs: Sequence[dict[str, Any]], challenger: str, threshold: float) -> str:
    """Champion score against challenger score on the date (a sample), with the action threshold."""
    fig, ax = _figure(3.6, 3.4)
    ax.scatter([p["a"] for p in pairs], [p["b"] for p in pairs], s=4, alpha=0.35, color=CHAMPION, linewidths=0, rasterized=True)
    ax.plot([0, 1], [0, 1], color=REFERENCE, linestyle="--", linewidth=1)
    ax.axvline(threshold, color=ALERT, linewidth=0.6, alpha=0.6)
    ax.axhline(threshold, color=ALERT, linewidth=0.6, alpha=0.6)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("champion score")
    ax.set_ylabel(f"challenger score: {challenger}", fontsize=8)
    return _svg(fig, "scatter")


def shadow_trend(rows: Sequence[dict[str, Any]], start: dt.date, end: dt.date) -> str:
    """Per date: the share of decisions that flip, and the challenger's AUC minus the champion's."""
    import matplotlib.pyplot as plt

    fig, (flips, diff) = plt.subplots(2, 1, sharex=True, figsize=(7.5, 3.6), layout="constrained")
    for version in sorted({r["challenger_version"] for r in rows}):
        mine = [r for r in rows if r["challenger_version"] == version]
        days = [r["as_of_date"] for r in mine]
        label = f"v{version}"
        flips.plot(days, [r["flip_share"] for r in mine], marker="o", markersize=3, label=label)
        diff.plot(
            days, [_minus(r["challenger_expected_auc"], r["champion_expected_auc"]) for r in mine], marker="o", markersize=3,
            label=f"{label} estimated",
        )  # fmt: skip
        if any(r["challenger_realized_auc"] is not None for r in mine):
            diff.plot(
                days, [_minus(r["challenger_realized_auc"], r["champion_realized_auc"]) for r in mine], marker="s",
                markersize=4, linestyle="none", label=f"{label} realized",
            )  # fmt: skip
    flips.set_ylabel("flip share")
    flips.set_ylim(bottom=0)  # a share from 0: noise in the third decimal does not look like a trend
    flips.set_gid("flip-share")
    diff.set_ylabel("AUC: challenger − champion", fontsize=8)
    diff.axhline(0, color=REFERENCE, linewidth=1)
    _dates(diff, start, end)
    diff.legend(frameon=False, fontsize=8, ncols=3)
    return _svg(fig, "shadow")


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def reasons(rows: Sequence[dict[str, Any]]) -> str:
    """How often each feature is the first reason of a high-risk row, by direction."""
    fig, ax = _figure(6.0, 0.35 * len(rows) + 0.8)
    labels = [f"{r['feature']} ({'raises' if r['raises'] else 'lowers'} risk)" for r in rows][::-1]
    counts = [r["rows"] for r in rows][::-1]
    colors = [ALERT if r["raises"] else CHAMPION for r in rows][::-1]
    ax.barh(labels, counts, color=colors)
    ax.set_xlabel("high-risk rows whose first reason it is")
    ax.grid(axis="y", visible=False)
    return _svg(fig, "reasons")
