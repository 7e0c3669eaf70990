"""Monitoring metrics against hand-computed values and reference implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy, norm
from sklearn.isotonic import IsotonicRegression
from sklearn.metrics import average_precision_score, ndcg_score, roc_auc_score

from pipelines.monitoring import metrics


def _grouped(score: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the warehouse returns for GROUP BY score: one entry per distinct score, shuffled."""
    unique, inverse = np.unique(score, return_inverse=True)
    rows = np.bincount(inverse, minlength=unique.size)
    positives = np.bincount(inverse, weights=labels, minlength=unique.size)
    order = np.random.default_rng(0).permutation(unique.size)
    return unique[order], rows[order], positives[order]


def test_shares():
    np.testing.assert_allclose(metrics.shares([1, 3, 0, 4]), [0.125, 0.375, 0.0, 0.5])
    for bad in ([0, 0, 0], [], [1, -1, 2]):
        with pytest.raises(ValueError):
            metrics.shares(bad)


def test_psi_is_symmetrised_kl_on_floored_shares():
    e = np.array([0.5, 0.3, 0.2, 0.0])
    a = np.array([0.4, 0.3, 0.1, 0.2])
    eps = 1e-4
    ef, af = np.maximum(e, eps), np.maximum(a, eps)
    ef, af = ef / ef.sum(), af / af.sum()
    assert metrics.psi(e, a, epsilon=eps) == pytest.approx(entropy(af, ef) + entropy(ef, af), rel=1e-12)
    # hand check without empty bins: (0.4-0.5) ln(0.8) + (0.6-0.5) ln(1.2)
    assert metrics.psi([0.5, 0.5], [0.4, 0.6]) == pytest.approx(-0.1 * math.log(0.8) + 0.1 * math.log(1.2), rel=1e-12)
    assert metrics.psi(e, e) == 0.0
    with pytest.raises(ValueError, match="same length"):
        metrics.psi([0.5, 0.5], [1.0])


def test_distances():
    p, q = [0.5, 0.5, 0.0], [0.1, 0.4, 0.5]
    assert metrics.linf_distance(p, q) == pytest.approx(0.5)
    assert metrics.tv_distance(p, q) == pytest.approx(0.5 * (0.4 + 0.1 + 0.5))
    assert metrics.tv_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert metrics.js_distance([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint supports: 1 bit
    assert metrics.js_distance(p, p) == pytest.approx(0.0)
    assert metrics.js_distance(p, q) == pytest.approx(jensenshannon(p, q, base=2))
    with pytest.raises(ValueError):
        metrics.js_distance([], [])


def test_hanley_mcneil_worked_example():
    # Hanley & McNeil (1982): A = 0.893, 51 abnormal, 58 normal -> SE 0.032 (0.0325 to 3 decimals
    # by hand: Q1 = 0.80669, Q2 = 0.84252, SE² = 3.1266 / 2958).
    assert metrics.hanley_mcneil_se(0.893, 51, 58) == pytest.approx(0.0325, abs=5e-5)
    assert metrics.hanley_mcneil_se(0.893, 51.5, 58.25) > 0  # expected counts are fine
    with pytest.raises(ValueError):
        metrics.hanley_mcneil_se(1.2, 51, 58)
    with pytest.raises(ValueError):
        metrics.hanley_mcneil_se(0.8, 0, 58)


def _trapezoid_expected_auc(score: np.ndarray, probability: np.ndarray) -> float:
    """Per-row reference: expected ROC points at each distinct threshold, trapezoid area."""
    thresholds = np.unique(score)[::-1]
    tp = np.array([probability[score >= t].sum() for t in thresholds])
    fp = np.array([(1 - probability[score >= t]).sum() for t in thresholds])
    tpr = np.concatenate([[0.0], tp / probability.sum()])
    fpr = np.concatenate([[0.0], fp / (1 - probability).sum()])
    return float(np.trapezoid(tpr, fpr))


def test_expected_auc_with_known_labels_is_roc_auc():
    rng = np.random.default_rng(1)
    score = np.round(rng.random(300), 2)  # ties across rows (buckets with equal scores)
    labels = (rng.random(300) < score).astype(float)
    assert metrics.expected_auc(score, np.ones(300), labels) == pytest.approx(roc_auc_score(labels, score), abs=1e-12)


def test_expected_auc_with_random_probabilities():
    rng = np.random.default_rng(2)
    n = 2_000
    score = np.round(rng.random(n), 2)
    probability = np.clip(score + rng.normal(0, 0.2, n), 0.01, 0.99)
    expected = metrics.expected_auc(score, np.ones(n), probability)
    assert expected == pytest.approx(_trapezoid_expected_auc(score, probability), abs=1e-12)
    weighted = roc_auc_score(
        np.r_[np.ones(n), np.zeros(n)], np.r_[score, score], sample_weight=np.r_[probability, 1 - probability]
    )
    assert expected == pytest.approx(weighted, abs=1e-12)
    draws = [roc_auc_score(rng.random(n) < probability, score) for _ in range(200)]
    assert expected == pytest.approx(np.mean(draws), abs=3e-3)  # SE of the mean ~ 8e-4


def test_expected_auc_from_buckets_equals_rows():
    rng = np.random.default_rng(3)
    score = np.round(rng.random(500), 1)
    probability = score * 0.8 + 0.1  # one probability per bucket
    bucket_score, bucket_rows, _ = _grouped(score, np.zeros(500))
    bucket_probability = bucket_score * 0.8 + 0.1
    assert metrics.expected_auc(bucket_score, bucket_rows, bucket_probability) == pytest.approx(
        _trapezoid_expected_auc(score, probability), abs=1e-9
    )


def test_expected_positive_rate_and_precision_at_top():
    score, rows, p = [0.9, 0.1, 0.5], [10, 70, 20], [0.8, 0.1, 0.5]
    assert metrics.expected_positive_rate(score, rows, p) == pytest.approx((8 + 7 + 10) / 100)
    assert metrics.expected_precision_at_top(score, rows, p, share=0.1) == pytest.approx(0.8)
    # top 20 rows: the 10 rows at 0.9 and 10 of the 20 rows at 0.5
    assert metrics.expected_precision_at_top(score, rows, p, share=0.2) == pytest.approx((8 + 5) / 20)
    assert metrics.expected_precision_at_top(score, rows, p, share=1.0) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        metrics.expected_precision_at_top(score, rows, p, share=0)
    with pytest.raises(ValueError):
        metrics.expected_auc(score, rows, [0.8, 0.1, 1.5])


def test_calibrate_matches_isotonic_predict():
    rng = np.random.default_rng(4)
    x = rng.random(400)
    y = (rng.random(400) < x**2).astype(float)
    model = IsotonicRegression(out_of_bounds="clip").fit(x, y)
    scores = np.concatenate([rng.uniform(-0.5, 1.5, 500), [x.min(), x.max(), -10.0, 10.0]])
    np.testing.assert_allclose(
        metrics.calibrate(scores, model.X_thresholds_, model.y_thresholds_), model.predict(scores), atol=1e-12
    )
    with pytest.raises(ValueError):
        metrics.calibrate(scores, [0.0, 0.0, 1.0], [0.1, 0.2, 0.3])


@pytest.mark.parametrize("decimals", [2, None])
def test_grouped_realized_metrics_match_sklearn(decimals):
    rng = np.random.default_rng(5)
    raw = rng.random(3_000)
    labels = (rng.random(3_000) < raw).astype(float)
    score = np.round(raw, decimals) if decimals is not None else raw
    grouped = _grouped(score, labels)
    assert metrics.roc_auc_grouped(*grouped) == pytest.approx(roc_auc_score(labels, score), abs=1e-12)
    assert metrics.average_precision_grouped(*grouped) == pytest.approx(average_precision_score(labels, score), abs=1e-12)


def test_grouped_refuses_one_class():
    for positives in ([0, 0], [3, 2]):
        for function in (metrics.roc_auc_grouped, metrics.average_precision_grouped):
            with pytest.raises(ValueError, match="positives and negatives"):
                function([0.2, 0.7], [3, 2], positives)
    with pytest.raises(ValueError):
        metrics.roc_auc_grouped([0.2, 0.7], [3, 2], [4, 0])


def test_expected_calibration_error():
    # |0.2-0.1|*10/40 + |0.6-0.8|*30/40 = 0.025 + 0.15
    assert metrics.expected_calibration_error([10, 30], [0.2, 0.6], [0.1, 0.8]) == pytest.approx(0.175)
    with pytest.raises(ValueError):
        metrics.expected_calibration_error([0, 0], [0.2, 0.6], [0.1, 0.8])


def _brute_force_delong(labels, scores_a, scores_b):
    """DeLong (1988) structural components with the Mann–Whitney kernel, O(n²)."""
    pos, neg = labels == 1, labels == 0
    v10, v01 = [], []
    for s in (scores_a, scores_b):
        x, y = s[pos][:, None], s[neg][None, :]
        psi = (x > y) + 0.5 * (x == y)
        v10.append(psi.mean(axis=1))
        v01.append(psi.mean(axis=0))
    s10, s01 = np.cov(np.vstack(v10)), np.cov(np.vstack(v01))
    s = s10 / pos.sum() + s01 / neg.sum()
    auc = [v.mean() for v in v10]
    z = (auc[0] - auc[1]) / math.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    return auc[0], auc[1], z, 2 * norm.sf(abs(z))


def test_delong_matches_brute_force():
    rng = np.random.default_rng(6)
    labels = (rng.random(60) < 0.4).astype(float)
    scores_a = np.round(labels * 0.5 + rng.random(60), 1)  # ties
    scores_b = np.round(labels * 0.2 + rng.random(60), 1)
    result = metrics.delong_test(labels, scores_a, scores_b)
    np.testing.assert_allclose(result, _brute_force_delong(labels, scores_a, scores_b), rtol=1e-10, atol=1e-12)
    assert result[0] == pytest.approx(roc_auc_score(labels, scores_a), abs=1e-12)
    assert result[1] == pytest.approx(roc_auc_score(labels, scores_b), abs=1e-12)
    assert metrics.delong_test(labels, scores_a, scores_a)[2:] == (0.0, 1.0)
    with pytest.raises(ValueError):
        metrics.delong_test([1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1])


def test_ndcg():
    reference = {"a": 3.0, "b": 2.0, "c": 1.0}
    # current ranking c, b, a: DCG = 1/log2(2) + 2/log2(3) + 3/log2(4); ideal = 3 + 2/log2(3) + 1/log2(4)
    hand = (1 + 2 / math.log2(3) + 1.5) / (3 + 2 / math.log2(3) + 0.5)
    assert metrics.ndcg(reference, {"a": 0.1, "b": 0.2, "c": 0.3}) == pytest.approx(hand, rel=1e-12)
    assert metrics.ndcg(reference, {"a": 0.9, "b": 0.5, "c": 0.1}) == pytest.approx(1.0)
    rng = np.random.default_rng(7)
    names = [f"f{i}" for i in range(12)]
    ref, cur = rng.random(12), rng.random(12)
    order = rng.permutation(12)
    for k in (None, 3):
        expected = ndcg_score([ref[order]], [cur[order]], k=k)
        assert metrics.ndcg(dict(zip(names, ref, strict=True)), dict(zip(names, cur, strict=True)), k=k) == pytest.approx(
            expected, rel=1e-12
        )
    with pytest.raises(ValueError):
        metrics.ndcg({"a": 0.0, "b": 0.0}, {"a": 1.0, "b": 2.0})


def test_psi_noise_is_the_chi_square_quantile_scaled_by_both_sizes():
    from scipy.stats import chi2

    # chi2.ppf(0.99, 9) = 21.666; (1/1000 + 1/4000) = 0.00125
    assert metrics.psi_noise(10, 1000, 4000) == pytest.approx(21.665994 * 0.00125, rel=1e-6)
    assert metrics.psi_noise(5, 300, 300, alpha=0.05) == pytest.approx(chi2.ppf(0.95, 4) * (2 / 300), rel=1e-12)
    assert metrics.psi_noise(1, 10, 10) == 0.0  # one bin cannot differ
    for bad in ((10, 0, 5), (10, 5, 0.5)):
        with pytest.raises(ValueError, match="sample sizes"):
            metrics.psi_noise(*bad)
    assert metrics.js_divergence_noise(8 * math.log(2)) == pytest.approx(1.0)


@pytest.mark.parametrize(("n", "m"), [(1500, 1500), (400, 20_000)])
def test_psi_and_js_noise_match_a_simulation_of_undrifted_samples(n, m):
    """The 99th percentile of PSI and of the squared JS distance between two samples of one
    distribution, simulated, is what psi_noise and js_divergence_noise predict (within 15%).
    The chi-square approximation needs about 5 expected rows per bin; drift's bins are
    quantiles of the reference (a tenth each) or a dominant value's, so they have them."""
    rng = np.random.default_rng(18)
    truth = np.array([0.55, *[0.05] * 9])  # a dominant value's bin, and the rest in quantile bins
    a, b = rng.multinomial(n, truth, size=4000), rng.multinomial(m, truth, size=4000)
    psi = np.array([metrics.psi(x, y) for x, y in zip(b, a, strict=True)])
    jsd = np.array([metrics.js_distance(x, y) ** 2 for x, y in zip(b, a, strict=True)])
    expected = metrics.psi_noise(len(truth), n, m)
    assert np.quantile(psi, 0.99) == pytest.approx(expected, rel=0.15)
    assert np.quantile(jsd, 0.99) == pytest.approx(metrics.js_divergence_noise(expected), rel=0.15)


def test_linf_and_null_share_noise_bound_undrifted_samples_at_their_level():
    """Simulated: two samples of one categorical distribution (sizes n and m) exceed the L∞ noise,
    and a null share rises by more than its noise, in at most about alpha of draws (1% here; the
    Bonferroni bound makes the L∞ one conservative)."""
    from pipelines.monitoring.metrics import linf_noise, proportion_increase_noise

    rng = np.random.default_rng(3)
    shares, n, m, draws = np.array([0.5, 0.3, 0.15, 0.05]), 400, 2000, 20_000
    a = rng.multinomial(n, shares, size=draws) / n
    b = rng.multinomial(m, shares, size=draws) / m
    exceeded = (np.abs(a - b).max(axis=1) >= linf_noise(shares, n, m)).mean()
    assert 0.001 < exceeded <= 0.012, exceeded
    # z_{0.99} standard errors of the difference of two proportions, by hand.
    assert proportion_increase_noise(0.1, n, m) == pytest.approx(2.3263479 * np.sqrt(0.09 * (1 / n + 1 / m)))
    now, then = rng.binomial(n, 0.1, draws) / n, rng.binomial(m, 0.1, draws) / m
    rose = (now - then >= proportion_increase_noise(0.1, n, m)).mean()
    assert 0.004 < rose < 0.016, rose
    assert proportion_increase_noise(0.0, n, m) == 0.0
