"""The report's bin labels: short and readable (3 significant digits), never cut mid-number."""

import pytest

from pipelines.report.charts import bin_label


@pytest.mark.parametrize(
    "stored, shown",
    [
        ("[8.07242e-05, 0.0311)", "8.07e-05–0.0311"),  # the label the issue found cut into "[8.07242e-05,…"
        ("[-inf, 3.5)", "< 3.5"),
        ("[12, inf)", "≥ 12"),
        ("[921.5, 1237.25)", "922–1,240"),
        ("[1e+06, 2.5e+07)", "1,000,000–25,000,000"),
        ("[-0.001234, 0)", "-0.00123–0"),
        ("= 0", "= 0"),
        ("= 17.25", "= 17.2"),
        ("(null)", "(null)"),
        ("(±inf)", "(±inf)"),
        ("(other)", "(other)"),
        ("enterprise", "enterprise"),
        ("a very long category name", "a very long c…"),  # categories are cut at 14 characters
        (None, "null"),
    ],
)
def test_bins_are_labelled_with_three_significant_digits(stored, shown):
    assert bin_label(stored) == shown


@pytest.mark.parametrize(
    "stored, shown",
    [("[1000.5, 1001.25)", "1,000–1,001"), ("[0.1231, 0.1234)", "0.1231–0.1234"), ("[5, 5.0001)", "5–5.0001")],
)
def test_a_narrow_bin_gets_the_digits_that_tell_its_ends_apart(stored, shown):
    assert bin_label(stored) == shown


def test_a_date_with_no_estimate_is_left_out_of_the_auc_chart():
    """A NULL estimate (stored with its status) neither breaks the chart nor is drawn as a value."""
    import datetime as dt

    from pipelines.report import charts

    day = dt.date(2026, 1, 31)
    none = {"as_of_date": day - dt.timedelta(days=1), "expected_auc": None, "expected_auc_lower": None,
            "expected_auc_upper": None, "alert_below": None}  # fmt: skip
    one = {"as_of_date": day, "expected_auc": 0.7, "expected_auc_lower": 0.6, "expected_auc_upper": 0.8, "alert_below": 0.55}
    with charts.style():
        svg = charts.auc_trend([none, one], [], day - dt.timedelta(days=6), day)
    assert svg.startswith("<svg") and 'id="estimate-band' in svg
    with charts.style():
        assert charts.auc_trend([none], [], day - dt.timedelta(days=6), day).startswith("<svg")
