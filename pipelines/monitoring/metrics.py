"""Model-monitoring metrics: small, pure, vectorised numpy functions (no I/O).

Inputs are 1-D arrays (or dicts for `ndcg`); every function refuses empty or mismatched
inputs with a ValueError. scipy and scikit-learn are imported inside the functions that use
them, so importing this module stays cheap. Each formula names its source.
"""

from __future__ import annotations

import math
from typing import cast

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]


def _vector(name: str, values: npt.ArrayLike) -> Floats:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _vectors(**named: npt.ArrayLike) -> list[Floats]:
    arrays = [_vector(name, values) for name, values in named.items()]
    if len({a.size for a in arrays}) > 1:
        sizes = ", ".join(f"{name}={a.size}" for name, a in zip(named, arrays, strict=True))
        raise ValueError(f"arrays must have the same length, got {sizes}")
    return arrays


def _distribution(name: str, values: npt.ArrayLike) -> Floats:
    array = _vector(name, values)
    if (array < 0).any():
        raise ValueError(f"{name} has negative entries")
    if array.sum() <= 0:
        raise ValueError(f"{name} is all zero: no distribution")
    return array / array.sum()


def _pair(p: npt.ArrayLike, q: npt.ArrayLike) -> tuple[Floats, Floats]:
    _vectors(p=p, q=q)
    return _distribution("p", p), _distribution("q", q)


def shares(counts: npt.ArrayLike) -> Floats:
    """Counts per bin (shape (k,), non-negative) -> shares per bin summing to 1.

    Refuses empty input, negative counts and all-zero counts.
    """
    return _distribution("counts", counts)


def psi(expected_shares: npt.ArrayLike, actual_shares: npt.ArrayLike, epsilon: float = 1e-4) -> float:
    """Population Stability Index of `actual_shares` against `expected_shares` (shape (k,) each).

    PSI = Σ (a − e)·ln(a/e), where both share vectors are floored at `epsilon` and renormalised
    to sum 1, so an empty bin gives a large but finite term. It equals the symmetrised
    Kullback–Leibler divergence KL(a‖e) + KL(e‖a) (natural log) of the floored shares.
    Source: N. Siddiqi, *Credit Risk Scorecards* (Wiley, 2006).
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    e, a = _pair(expected_shares, actual_shares)
    e, a = np.maximum(e, epsilon), np.maximum(a, epsilon)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """Jensen–Shannon distance between two distributions (shape (k,) each), base 2, in [0, 1].

    sqrt(½ KL(p‖m) + ½ KL(q‖m)) with m = (p + q)/2, computed by
    scipy.spatial.distance.jensenshannon(p, q, base=2) (Endres & Schindelin 2003, IEEE Trans.
    Inf. Theory 49(7)). Inputs are normalised to sum 1; negative or all-zero inputs are refused.
    """
    from scipy.spatial.distance import jensenshannon

    p, q = _pair(p, q)
    return float(jensenshannon(p, q, base=2))


def psi_noise(bins: int, n: float, m: float, alpha: float = 0.01) -> float:
    """The (1 − alpha) quantile of the PSI between two independent samples of sizes `n` and `m`
    drawn from one distribution over `bins` non-empty bins: what sampling noise alone reaches.

    Under no change, PSI / (1/n + 1/m) is asymptotically χ² with bins − 1 degrees of freedom,
    so the quantile is χ²_{1−α}(bins − 1)·(1/n + 1/m) (scipy.stats.chi2). Source: B. Yurdakul
    (2018), "Statistical Properties of Population Stability Index", PhD dissertation, Western
    Michigan University. One bin (or none) cannot differ: 0. Refuses n or m below 1 and alpha
    outside (0, 1).
    """
    from scipy.stats import chi2

    if not (n >= 1 and m >= 1):
        raise ValueError(f"sample sizes must be at least 1, got n={n} and m={m}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if bins <= 1:
        return 0.0
    return float(chi2.ppf(1 - alpha, bins - 1) * (1 / n + 1 / m))


def linf_noise(reference_shares: npt.ArrayLike, n: float, m: float, alpha: float = 0.01) -> float:
    """What sampling noise alone reaches in the L∞ distance between the category shares of two
    independent samples of sizes `n` and `m` drawn from `reference_shares` (shape (k,)).

    Each share difference is approximately normal with variance p_i(1 − p_i)(1/n + 1/m) (the
    pooled two-proportion z-test); the largest of the k is bounded by Bonferroni at z_{1−α/(2k)}
    standard errors of the widest category: z_{1−α/(2k)}·max_i sqrt(p_i(1 − p_i))·sqrt(1/n + 1/m).
    Source: J. L. Fleiss, B. Levin & M. C. Paik (2003), Statistical Methods for Rates and
    Proportions, 3rd ed., Wiley, ch. 2–3 (difference of two proportions); Bonferroni for the max.
    """
    from scipy.stats import norm

    p = _distribution("reference_shares", reference_shares)
    if not (n >= 1 and m >= 1):
        raise ValueError(f"sample sizes must be at least 1, got n={n} and m={m}")
    z = norm.ppf(1 - alpha / (2 * p.size))
    return float(z * np.sqrt(p * (1 - p)).max() * math.sqrt(1 / n + 1 / m))


def proportion_increase_noise(share: float, n: float, m: float, alpha: float = 0.01) -> float:
    """What sampling noise alone reaches, one-sided, in the increase of a share (say, of nulls)
    from a sample of `m` to one of `n` when both hold the same true `share` (the pooled one):
    z_{1−α}·sqrt(share(1 − share)(1/n + 1/m)), the pooled two-proportion z-test. Source: Fleiss,
    Levin & Paik (2003), Statistical Methods for Rates and Proportions, 3rd ed., Wiley, ch. 2–3.
    A share of 0 or 1 has no noise: any change is news.
    """
    from scipy.stats import norm

    if not 0 <= share <= 1:
        raise ValueError(f"share must be in [0, 1], got {share}")
    if not (n >= 1 and m >= 1):
        raise ValueError(f"sample sizes must be at least 1, got n={n} and m={m}")
    return float(norm.ppf(1 - alpha) * math.sqrt(share * (1 - share) * (1 / n + 1 / m)))


def js_divergence_noise(psi: float) -> float:
    """The Jensen–Shannon divergence (base 2) that goes with a small PSI between close distributions.

    To second order both are χ²-type sums: PSI ≈ Σ (p − q)²/p, and the JS divergence in nats
    ≈ ¼ Σ (p − q)²/(p + q) ≈ ⅛ Σ (p − q)²/p (its expansion in the triangular discrimination;
    F. Topsøe (2000), IEEE Trans. Inf. Theory 46(4):1602–1609), so JS (bits) ≈ PSI / (8 ln 2).
    Used to turn `psi_noise` into the noise of the squared JS distance.
    """
    return psi / (8 * math.log(2))


def linf_distance(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """L∞ distance max_i |p_i − q_i| between two distributions (shape (k,) each, normalised to sum 1)."""
    p, q = _pair(p, q)
    return float(np.max(np.abs(p - q)))


def tv_distance(p: npt.ArrayLike, q: npt.ArrayLike) -> float:
    """Total variation distance ½ Σ |p_i − q_i| between two distributions (shape (k,) each, normalised), in [0, 1]."""
    p, q = _pair(p, q)
    return float(0.5 * np.sum(np.abs(p - q)))


def hanley_mcneil_se(auc: float, n_positive: float, n_negative: float) -> float:
    """Standard error of a ROC AUC A from n₁ positives (abnormal) and n₂ negatives (normal).

    SE² = [A(1−A) + (n₁−1)(Q₁−A²) + (n₂−1)(Q₂−A²)] / (n₁n₂), Q₁ = A/(2−A), Q₂ = 2A²/(1+A).
    Counts may be non-integer (expected counts); they must be positive, and A in [0, 1].
    Source: Hanley & McNeil (1982), Radiology 143:29–36, eq. 1.
    """
    if not 0.0 <= auc <= 1.0:
        raise ValueError(f"auc must be in [0, 1], got {auc}")
    if not (n_positive > 0 and n_negative > 0):
        raise ValueError(f"n_positive and n_negative must be positive, got {n_positive} and {n_negative}")
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = auc * (1 - auc) + (n_positive - 1) * (q1 - auc**2) + (n_negative - 1) * (q2 - auc**2)
    return math.sqrt(max(variance, 0.0) / (n_positive * n_negative))


def _groups(score: npt.ArrayLike, rows: npt.ArrayLike, positives: npt.ArrayLike, *, what: str) -> tuple[Floats, Floats, Floats]:
    """Merge entries with equal scores; return (rows, positives, negatives) per score, highest score first."""
    score, rows, positives = _vectors(score=score, rows=rows, positives=positives)
    if (rows < 0).any() or (positives < 0).any() or (positives > rows * (1 + 1e-12)).any():
        raise ValueError(f"{what}: need 0 <= positives <= rows for every entry")
    keep = rows > 0
    if not keep.any():
        raise ValueError(f"{what}: no rows")
    unique, inverse = np.unique(score[keep], return_inverse=True)
    # Weighted counts are float64; numpy's stub types every bincount as intp.
    rows_g = cast(Floats, np.bincount(inverse, weights=rows[keep], minlength=unique.size))[::-1]
    pos_g = cast(Floats, np.bincount(inverse, weights=positives[keep], minlength=unique.size))[::-1]
    return rows_g, pos_g, np.maximum(rows_g - pos_g, 0.0)


def _require_both_classes(pos: Floats, neg: Floats, *, what: str) -> None:
    if pos.sum() <= 0 or neg.sum() <= 0:
        raise ValueError(f"{what}: needs both positives and negatives, got {pos.sum():g} positives and {neg.sum():g} negatives")


def _auc(pos: Floats, neg: Floats, *, what: str) -> float:
    """Mann–Whitney AUC from positives/negatives per distinct score, highest score first (ties count half)."""
    _require_both_classes(pos, neg, what=what)
    above = np.cumsum(pos) - pos
    return float(np.sum(neg * (above + pos / 2)) / (pos.sum() * neg.sum()))


def _buckets(
    bucket_score: npt.ArrayLike, bucket_rows: npt.ArrayLike, bucket_probability: npt.ArrayLike
) -> tuple[Floats, Floats, Floats]:
    rows, probability = _vectors(bucket_rows=bucket_rows, bucket_probability=bucket_probability)
    if ((probability < 0) | (probability > 1)).any():
        raise ValueError("bucket_probability must lie in [0, 1]")
    return _groups(bucket_score, rows, rows * probability, what="CBPE")


def expected_auc(bucket_score: npt.ArrayLike, bucket_rows: npt.ArrayLike, bucket_probability: npt.ArrayLike) -> float:
    """CBPE expected ROC AUC from bucketed scores (shape (b,) each, any order).

    `bucket_score` is the bucket's mean raw score, `bucket_rows` its row count and
    `bucket_probability` the calibrated probability of a positive for its rows. Expected
    positives P_b = rows_b·p_b and negatives N_b = rows_b·(1−p_b); the expected TPR/FPR as the
    threshold moves down the buckets (rows in one bucket, or buckets with equal scores, are ties)
    integrated by the trapezoid rule gives AUC = Σ_b N_b (P_above_b + P_b/2) / (P·N).
    Refuses expected P or N of zero. Source: NannyML documentation, "Confidence-based
    Performance Estimation (CBPE)".
    """
    _, pos, neg = _buckets(bucket_score, bucket_rows, bucket_probability)
    return _auc(pos, neg, what="CBPE")


def expected_positive_rate(bucket_score: npt.ArrayLike, bucket_rows: npt.ArrayLike, bucket_probability: npt.ArrayLike) -> float:
    """CBPE expected share of positives Σ rows_b·p_b / Σ rows_b (bucketed inputs as in `expected_auc`).

    Source: NannyML documentation, "Confidence-based Performance Estimation (CBPE)".
    """
    rows, pos, _ = _buckets(bucket_score, bucket_rows, bucket_probability)
    return float(pos.sum() / rows.sum())


def expected_precision_at_top(
    bucket_score: npt.ArrayLike, bucket_rows: npt.ArrayLike, bucket_probability: npt.ArrayLike, share: float = 0.1
) -> float:
    """CBPE expected precision among the `share` (0 < share <= 1) of rows with the highest scores.

    Whole buckets are taken from the top score down, and the needed fraction of the boundary
    bucket; precision = expected positives taken / rows taken. Bucketed inputs as in
    `expected_auc`. Source: NannyML documentation, "Confidence-based Performance Estimation (CBPE)".
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    rows, pos, _ = _buckets(bucket_score, bucket_rows, bucket_probability)
    wanted = share * rows.sum()
    taken = np.clip(wanted - (np.cumsum(rows) - rows), 0.0, rows)
    return float(np.sum(taken / rows * pos) / wanted)


def calibrate(scores: npt.ArrayLike, thresholds_x: npt.ArrayLike, thresholds_y: npt.ArrayLike) -> Floats:
    """Apply a fitted isotonic regression stored as its breakpoints to raw `scores` (shape (n,)).

    `thresholds_x` (strictly increasing) and `thresholds_y` (shape (t,) each) are
    `X_thresholds_` and `y_thresholds_` of sklearn.isotonic.IsotonicRegression(out_of_bounds="clip");
    the result is linear interpolation between breakpoints, clipped to the end values outside
    the fitted range, which is what `IsotonicRegression.predict` returns.
    """
    scores = _vector("scores", scores)
    x, y = _vectors(thresholds_x=thresholds_x, thresholds_y=thresholds_y)
    if (np.diff(x) <= 0).any():
        raise ValueError("thresholds_x must be strictly increasing")
    return np.interp(scores, x, y)


def roc_auc_grouped(score: npt.ArrayLike, rows: npt.ArrayLike, positives: npt.ArrayLike) -> float:
    """Realized ROC AUC from rows grouped by distinct score (shape (g,) each, any order).

    Mann–Whitney: AUC = Σ_g N_g (P_above_g + P_g/2) / (P·N), ties counting half; equals
    sklearn.metrics.roc_auc_score on the ungrouped rows. Refuses a set with no positives or no
    negatives. Source: Hanley & McNeil (1982), Radiology 143:29–36 (AUC = Wilcoxon statistic).
    """
    _, pos, neg = _groups(score, rows, positives, what="roc_auc_grouped")
    return _auc(pos, neg, what="roc_auc_grouped")


def average_precision_grouped(score: npt.ArrayLike, rows: npt.ArrayLike, positives: npt.ArrayLike) -> float:
    """Realized average precision from rows grouped by distinct score (shape (g,) each, any order).

    AP = Σ_n (R_n − R_{n−1}) P_n over the distinct scores in descending order (R_0 = 0), with
    recall R_n and precision P_n at threshold "score >= s_n" and no interpolation — the
    definition of sklearn.metrics.average_precision_score. Refuses a set with no positives or
    no negatives.
    """
    rows_g, pos, neg = _groups(score, rows, positives, what="average_precision_grouped")
    _require_both_classes(pos, neg, what="average_precision_grouped")
    precision = np.cumsum(pos) / np.cumsum(rows_g)
    return float(np.sum(pos / pos.sum() * precision))


def expected_calibration_error(bin_rows: npt.ArrayLike, bin_mean_score: npt.ArrayLike, bin_positive_rate: npt.ArrayLike) -> float:
    """Expected calibration error over the given bins (shape (b,) each; scores and rates in [0, 1]).

    ECE = Σ_b (n_b/n)·|mean_score_b − positive_rate_b|. Refuses negative or all-zero row counts.
    Source: Naeini, Cooper & Hauskrecht (2015), AAAI; Guo et al. (2017), ICML.
    """
    rows, mean_score, positive_rate = _vectors(
        bin_rows=bin_rows, bin_mean_score=bin_mean_score, bin_positive_rate=bin_positive_rate
    )
    weights = _distribution("bin_rows", rows)
    return float(np.sum(weights * np.abs(mean_score - positive_rate)))


def delong_test(labels: npt.ArrayLike, scores_a: npt.ArrayLike, scores_b: npt.ArrayLike) -> tuple[float, float, float, float]:
    """DeLong test of two correlated ROC AUCs on the same rows (shape (n,) each; labels 0/1).

    Returns (auc_a, auc_b, z, two-sided p-value). Placement values V10 (per positive) and V01
    (per negative) come from midranks: V10_i = (Tz_i − Tx_i)/n, V01_j = 1 − (Tz_j − Ty_j)/m,
    with m positives, n negatives; Var(A−B) = var(V10_a − V10_b)/m + var(V01_a − V01_b)/n
    (sample variances), z = (A−B)/sqrt(Var), p = 2·Φ(−|z|). Zero variance gives z = 0, p = 1
    when the AUCs are equal (and ±inf, p = 0 otherwise). Needs at least two positives and two
    negatives. Sources: DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44:837–845; midrank
    algorithm of Sun & Xu (2014), IEEE Signal Processing Letters 21(11):1389–1393.
    """
    from scipy.stats import norm, rankdata

    labels, scores_a, scores_b = _vectors(labels=labels, scores_a=scores_a, scores_b=scores_b)
    if not np.isin(labels, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    positive = labels == 1
    m, n = int(positive.sum()), int((~positive).sum())
    if m < 2 or n < 2:
        raise ValueError(f"DeLong test needs at least two positives and two negatives, got {m} and {n}")
    scores = np.vstack([scores_a, scores_b])
    x, y = scores[:, positive], scores[:, ~positive]
    tz = rankdata(np.hstack([x, y]), axis=1)
    v10 = (tz[:, :m] - rankdata(x, axis=1)) / n
    v01 = 1.0 - (tz[:, m:] - rankdata(y, axis=1)) / m
    auc_a, auc_b = v10.mean(axis=1)
    variance = np.var(v10[0] - v10[1], ddof=1) / m + np.var(v01[0] - v01[1], ddof=1) / n
    if variance <= 0:
        z = 0.0 if auc_a == auc_b else math.copysign(math.inf, auc_a - auc_b)
    else:
        z = (auc_a - auc_b) / math.sqrt(variance)
    return float(auc_a), float(auc_b), float(z), float(2 * norm.sf(abs(z)))


def ndcg(reference_importance: dict[str, float], current_importance: dict[str, float], k: int | None = None) -> float:
    """Normalised discounted cumulative gain of the current feature ranking, in [0, 1].

    Relevance is the reference (validation-window) importance, non-negative; the ranking is by
    current importance (e.g. mean |contribution|). Features missing from one dict count as 0 there.
    NDCG@k = DCG@k / ideal DCG@k with DCG = Σ_r rel_r / log2(r + 1), ties in the current
    ranking averaged; computed by sklearn.metrics.ndcg_score (Järvelin & Kekäläinen 2002, ACM
    TOIS 20(4)). Refuses fewer than two features, negative or all-zero reference, and k < 1.
    """
    from sklearn.metrics import ndcg_score

    features = sorted(set(reference_importance) | set(current_importance))
    if len(features) < 2:
        raise ValueError(f"NDCG needs at least two features, got {len(features)}")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    relevance = _vector("reference_importance", [reference_importance.get(f, 0.0) for f in features])
    current = _vector("current_importance", [current_importance.get(f, 0.0) for f in features])
    if (relevance < 0).any() or relevance.sum() <= 0:
        raise ValueError("reference_importance must be non-negative and not all zero")
    return float(ndcg_score(relevance[None, :], current[None, :], k=k))
