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
