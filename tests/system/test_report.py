"""The model-health report: rendered from a warehouse that went through the real pipeline
(scored, shadow-scored, validated, monitored, labelled), then opened in headless Chromium
(the system package, driven by Playwright): no console errors, no request beyond the file,
every chart drawn with a size, under 5 MB, and a screenshot kept in test-artifacts/."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import resources

from pipelines import report
from pipelines.adapters.warehouse import open_warehouse
from pipelines.domain.errors import InputError, ValidationFailed
from pipelines.usecases import health as model_health
from pipelines.usecases import models
from tests.conftest import AS_OF, score_date, settings_for

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LABELLED = [AS_OF - dt.timedelta(days=45), AS_OF - dt.timedelta(days=44)]  # labels complete 30 days on
NO_CHALLENGER = AS_OF - dt.timedelta(days=3)
FAILED = AS_OF - dt.timedelta(days=2)
RECENT = [AS_OF - dt.timedelta(days=1), AS_OF]


@pytest.fixture(scope="module")
def home(base_home, tmp_path_factory, spec):
    """A DuckDB home the pipeline ran through: two labelled dates and two recent ones scored with a
    challenger in the shadow, one date scored without a challenger, one that failed validation."""
    root = tmp_path_factory.mktemp("report")
    shutil.copy(base_home["home"] / "warehouse.duckdb", root / "warehouse.duckdb")
    shutil.copy(base_home["settings"].mlflow_tracking_uri.removeprefix("sqlite:///"), root / "own-mlflow.db")
    settings = settings_for(root, f"sqlite:///{root / 'own-mlflow.db'}")
    models.train(resources(settings), spec, AS_OF - dt.timedelta(days=14), alias="challenger")
    resources(settings).dbt.build_features(spec, [*LABELLED, NO_CHALLENGER, FAILED, *RECENT])
    for day in [*LABELLED, *RECENT]:
        score_date(settings, spec, day)
        model_health.monitor(resources(settings), spec, day)
    score_date(settings, replace(spec, shadow_aliases=()), NO_CHALLENGER)
    model_health.monitor(resources(settings), spec, NO_CHALLENGER)
    warehouse = open_warehouse(settings.warehouse_url)
    warehouse.execute(
        "update analytics.churn_features set active_days_30d = 31 where as_of_date = $1 and customer_id = "
        "(select max(customer_id) from analytics.churn_features where as_of_date = $1)",
        [FAILED],
    )
    with pytest.raises(ValidationFailed):
        score_date(settings, spec, FAILED)
    assert {r.as_of_date for r in model_health.realize(resources(settings), spec)} == set(LABELLED)
    return settings


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        # --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start.
        launched = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-background-networking"])
        yield launched
        launched.close()


def open_page(browser, path: Path, screenshot: str):
    """Load the report; return (page, console errors, requests other than the file itself)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url) if r.url != path.as_uri() else None)
    page.goto(path.as_uri(), wait_until="load")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    return page, errors, requests


def assert_sound(page, errors, requests, path: Path) -> int:
    """The page's invariants; returns how many charts it drew."""
    assert errors == [] and requests == []
    assert path.stat().st_size < 5 * 1024 * 1024
    charts = page.locator("figure.chart svg, td.trend svg")
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0, f"chart {i} has no size"
    return charts.count()


def section(page, title: str):
    return page.locator("section", has=page.locator("h2", has_text=title))


def tile(page, label: str) -> str:
    return page.locator(f'[data-tile="{label}"]').inner_text()


def test_the_report_shows_every_part_of_the_health_of_a_date(home, spec, browser, tmp_path):
    out = report.write(resources(home), spec, AS_OF, days=60, out=tmp_path / "churn.html")
    page, errors, requests = open_page(browser, out, "report-churn.png")
    assert assert_sound(page, errors, requests, out) >= 8

    warehouse = open_warehouse(home.warehouse_url)
    [day] = warehouse.query("select * from monitoring.daily_health where as_of_date = $1", [AS_OF]).to_pylist()
    [attempt] = warehouse.query(
        "select * from monitoring.scoring_runs where as_of_date = $1 and status = 'published'", [AS_OF]
    ).to_pylist()
    assert f"{attempt['rows_scored']:,}" in tile(page, "Rows scored")
    assert f"{day['expected_auc']:.3f}" in tile(page, "Estimated AUC (CBPE)")
    realized = warehouse.query(
        "select roc_auc from monitoring.realized_performance where as_of_date = $1", [LABELLED[-1]]
    ).to_pylist()
    assert f"{realized[0]['roc_auc']:.3f}" in tile(page, "Realized AUC") and str(LABELLED[-1]) in tile(page, "Realized AUC")
    assert tile(page, "Validation").startswith("VALIDATION\npassed") or "passed" in tile(page, "Validation")

    # The drift table: ordered by importance × PSI, one sparkline per feature.
    drift = warehouse.query(
        "select feature, importance * psi as weight from monitoring.feature_drift "
        "where as_of_date = $1 and comparison = 'baseline' and feature <> 'score' order by weight desc, feature",
        [AS_OF],
    ).to_pylist()
    rows = section(page, "Feature drift").locator("tbody tr")
    assert rows.count() == len(drift) == len(spec.feature_names)
    assert rows.first.locator("td").first.inner_text() == drift[0]["feature"]
    assert section(page, "Feature drift").locator("td.trend svg").count() == len(drift)
    assert section(page, "Reference vs current").locator("svg").count() == report.MOST_DRIFTED
    for title in ("Scores over time", "Estimated vs realized AUC", "Reliability", "Champion vs challenger", "Top reasons"):
        part = section(page, title)
        assert part.locator("[data-empty]").count() == 0, title
        assert part.locator("figure.chart svg").count() >= 1, title
    assert str(LABELLED[-1]) in section(page, "Reliability").inner_text()
    # The challenger's row of the date, and the scatter of both scores.
    assert section(page, "Champion vs challenger").locator("tbody tr").count() == 1
    assert section(page, "Champion vs challenger").locator("figure.chart svg").count() == 2
    assert "All" in section(page, "Validation").inner_text() and "passed" in section(page, "Validation").inner_text()
    assert section(page, "Run log").locator("tbody tr").count() == 1


def texts(locator) -> list[str]:
    """The text of SVG <text> elements (not HTML: they have no inner text)."""
    return locator.evaluate_all("elements => elements.map(e => e.textContent)")


def numbers(texts: list[str]) -> list[str]:
    return [n for t in texts for n in re.findall(r"-?\d[\d,]*\.?\d*(?:e[-+]\d+)?", t)]


def test_the_charts_read_as_a_person_reads_them(home, spec, browser, tmp_path):
    out = report.write(resources(home), spec, AS_OF, days=60, out=tmp_path / "readable.html")
    page, errors, requests = open_page(browser, out, "report-readable.png")
    assert_sound(page, errors, requests, out)
    # Bin labels: 3 significant digits at most, none cut mid-number.
    ticks = texts(section(page, "Reference vs current").locator("svg text"))
    assert ticks and not any("…" in t and re.search(r"\d", t) for t in ticks), ticks
    for number in numbers(ticks):
        digits = number.split("e")[0].replace(",", "").replace("-", "").replace(".", "").strip("0")
        assert len(digits) <= 3 or "," in number, (number, ticks)
    # The flip share is a share: its axis starts at 0, so noise does not look like a trend.
    flips = [float(n) for n in numbers(texts(page.locator("#flip-share text"))) if "." in n]
    assert flips and min(flips) == 0.0, flips


def test_a_short_history_says_so_and_draws_what_it_has(home, spec, browser, tmp_path):
    first = LABELLED[0]  # nothing was monitored before it
    out = report.write(resources(home), spec, first, days=60, out=tmp_path / "first.html")
    page, errors, requests = open_page(browser, out, "report-one-date.png")
    assert_sound(page, errors, requests, out)
    assert page.locator("[data-history]").inner_text() == f"history: 1 monitored date so far ({first}): the charts draw it alone"
    # The estimate's band, drawn for a single date (a filled band needs two), with a height.
    band = section(page, "Estimated vs realized AUC").locator('[id^="estimate-band"]')
    assert band.count() == 1 and band.bounding_box()["height"] > 5
    # The time axis spans a week up to the date, not the 60-day window with a dot at its edge.
    days = texts(section(page, "Scores over time").locator("figure.chart").first.locator("svg text"))
    month_before = (first.replace(day=1) - dt.timedelta(days=1)).strftime("%b")  # on a 60-day axis, a tick
    assert str((first - dt.timedelta(days=3)).day) in days and month_before not in days, days


def test_a_date_that_failed_validation_says_so_and_draws_no_broken_chart(home, spec, browser, tmp_path):
    out = report.write(resources(home), spec, FAILED, days=1, out=tmp_path / "failed.html")
    page, errors, requests = open_page(browser, out, "report-failed-validation.png")
    assert_sound(page, errors, requests, out)
    assert "failed" in tile(page, "Validation") and "failed" in tile(page, "Rows scored")
    validation = section(page, "Validation").inner_text()
    assert "active_days_30d" in validation and "31" in validation and "failed" in validation
    for title in ("Feature drift", "Scores over time", "Estimated vs realized AUC"):
        assert "nothing published for this date" in section(page, title).locator("[data-empty]").inner_text(), title
    assert section(page, "Run log").locator("tbody tr").first.locator("td").nth(1).inner_text() == "failed"


def test_no_labels_and_no_challenger_are_empty_states(home, spec, browser, tmp_path):
    out = report.write(resources(home), spec, NO_CHALLENGER, days=5, out=tmp_path / "empty.html")
    page, errors, requests = open_page(browser, out, "report-no-labels-no-challenger.png")
    assert_sound(page, errors, requests, out)
    assert "No labels yet" in section(page, "Reliability").locator("[data-empty]").inner_text()
    assert "no labelled date" in tile(page, "Realized AUC")
    assert "No challenger" in section(page, "Champion vs challenger").locator("[data-empty]").inner_text()
    assert section(page, "Estimated vs realized AUC").locator("figure.chart svg").count() == 1  # the estimate alone


def test_a_date_with_no_record_is_refused_and_writes_nothing(home, spec, tmp_path):
    never = AS_OF - dt.timedelta(days=100)
    with pytest.raises(InputError, match=f"no record of churn on {never}.*batchpred score churn --date {never}"):
        report.write(resources(home), spec, never, out=tmp_path / "never.html")
    assert not (tmp_path / "never.html").exists()


def test_the_default_place_is_under_the_home(home, spec):
    path = report.write(resources(home), spec, AS_OF, days=3)
    assert path == home.home / "reports" / "churn" / f"{AS_OF}.html" and path.stat().st_size > 0


@pytest.mark.parametrize("backend", ["postgres"])  # DuckDB is the home above; the same queries on PostgreSQL
def test_the_report_reads_the_same_tables_on_postgresql(settings, spec, warehouse, tmp_path):
    score_date(settings, spec)
    model_health.monitor(resources(settings), spec, AS_OF)
    page = report.write(resources(settings), spec, AS_OF, days=7, out=tmp_path / "pg.html").read_text()
    drifted = warehouse.query(
        "select count(*) as n from monitoring.feature_drift where as_of_date = $1 and comparison = 'baseline' "
        "and feature <> 'score'",
        [AS_OF],
    ).to_pylist()[0]["n"]
    assert drifted == len(spec.feature_names) and page.count('<td class="trend chart">') == drifted
    assert "No challenger scored in this window" in page and "high-risk rows whose first reason it is" in page
    [validated] = warehouse.query(
        "select count(*) as n from monitoring.validation_results where as_of_date = $1", [AS_OF]
    ).to_pylist()
    assert f"All {validated['n']} expectations passed with no unexpected rows" in page
