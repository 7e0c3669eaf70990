import shutil

import pytest
import yaml

from pipelines.config.settings import MODELS_DIR
from pipelines.config.spec import list_models, load_spec
from pipelines.domain.errors import SpecError
from pipelines.domain.identifiers import check_identifier, quote


def write_spec(tmp_path, **changes):
    folder = tmp_path / "churn"
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((MODELS_DIR / "churn" / "model.yaml").read_text())
    raw.update(changes)
    (folder / "model.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def test_churn_spec_loads():
    from pipelines.adapters.warehouse import tables

    spec = load_spec("churn")
    assert spec.key_columns == ("customer_id",)
    assert spec.feature_names[-3:] == ("plan", "region", "channel")
    assert str(tables.predictions(spec)) == "predictions.churn_scores"
    assert spec.suite_path.is_file()
    assert [s.name for s in spec.completeness.sources] == ["raw.usage_daily", "raw.invoices"]
    assert spec.completeness.lookback_days == 90
    assert spec.risk_bands == (("high", 0.5), ("medium", 0.2)) and spec.action_threshold == 0.5
    assert (spec.scoring.schedule, spec.scoring.retries, spec.scoring.timeout_minutes) == ("@daily", 2, 30)
    assert (spec.scoring.wait_for_data_minutes, spec.scoring.check_data_every_minutes) == (360, 10)
    assert {"churn", "payment_risk"} <= set(list_models())


def test_the_second_demo_model_is_configuration_alone():
    """payment_risk is a folder with model.yaml, dbt SQL and YAML, and a suite: no Python anywhere."""
    from pipelines.config.settings import DBT_PROJECT_DIR, EXPECTATIONS_DIR

    spec = load_spec("payment_risk")
    assert spec.key_columns == ("invoice_number",) and spec.target == "failed_7d"
    files = [
        *(MODELS_DIR / "payment_risk").rglob("*"),
        *DBT_PROJECT_DIR.rglob("*payment_risk*"),
        EXPECTATIONS_DIR / "payment_risk_features.json",
    ]
    assert len(files) >= 5
    assert all(f.suffix in (".yaml", ".yml", ".sql", ".json") for f in files if f.is_file()), files
    assert not any("import " in f.read_text() and f.suffix != ".sql" for f in files if f.is_file())


def test_a_model_name_too_long_for_its_table_names_is_refused_at_load(tmp_path):
    name = "m" * 53
    folder = tmp_path / name
    folder.mkdir()
    raw = yaml.safe_load((MODELS_DIR / "churn" / "model.yaml").read_text()) | {"name": name}
    (folder / "model.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=f"{name}_scores_staging.*{name}_reasons_staging.*use at most 47 characters"):
        load_spec(name, tmp_path)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"completeness": {"lookback_days": 90}}, "completeness needs lookback_days"),
        ({"completeness": {"lookback_days": 90, "sources": {"usage_daily": "usage_date"}}}, "must be schema.table"),
        (
            {"completeness": {"lookback_days": 0, "sources": {"raw.usage_daily": "usage_date"}}},
            "lookback_days must be a positive",
        ),
        ({"scoring": {"schedule": "@hourly"}}, "scoring.schedule must be daily"),
        ({"scoring": {"timeout_minutes": "soon"}}, "scoring.timeout_minutes"),
        ({"scoring": {"start_date": "someday"}}, "scoring.start_date must be a date"),
        ({"scoring": {"wait_for_data_minutes": -1}}, "scoring.wait_for_data_minutes must be a whole number"),
        ({"scoring": {"wait_for_data_minutes": 1.5}}, "scoring.wait_for_data_minutes must be a whole number"),
        ({"scoring": {"wait_for_data_minutes": True}}, "scoring.wait_for_data_minutes must be a whole number"),
        ({"scoring": {"check_data_every_minutes": 0}}, "scoring.check_data_every_minutes must be a whole number"),
        ({"scoring": {"check_data_every_minutes": 0.05}}, "scoring.check_data_every_minutes must be a whole number"),
        ({"scoring": {"check_data_every_minutes": float("nan")}}, "scoring.check_data_every_minutes must be a whole number"),
        ({"scoring": {"check_data_every_minutes": "10m"}}, "scoring.check_data_every_minutes must be a whole number"),
        (
            {"scoring": {"wait_for_data_minutes": 30, "check_data_every_minutes": 60}},
            r"at most scoring.wait_for_data_minutes \(30\)",
        ),
        ({"risk_bands": {"high": 1.5}}, "risk_bands.high must be a number between 0 and 1"),
        ({"risk_bands": {"high": 0.5, "low": 0.1}}, "'low' is the band below"),
        ({"segment": "tenure_days"}, "segment must be one of the categorical features"),
        ({"entity_key": ["customer_id", "customer_id"]}, "entity_key lists a column twice"),
    ],
)
def test_a_bad_section_is_refused_naming_the_key(tmp_path, changes, message):
    with pytest.raises(SpecError, match=message):
        load_spec("churn", write_spec(tmp_path, **changes))


def test_a_composite_key_is_accepted(tmp_path):
    spec = load_spec("churn", write_spec(tmp_path, entity_key=["customer_id", "region_id"]))
    assert spec.key_columns == ("customer_id", "region_id")


@pytest.mark.parametrize(
    "key, value",
    [
        ("entity_key", "customer_id; drop table raw.customers"),
        ("features_model", 'churn_features" --'),
        ("target", "1label"),
        ("suite", "../../etc/passwd"),
    ],
)
def test_identifiers_that_are_not_plain_names_are_refused(tmp_path, key, value):
    models = write_spec(tmp_path, **{key: value})
    with pytest.raises(SpecError) as excinfo:
        load_spec("churn", models)
    assert key in str(excinfo.value)
    assert "model.yaml" in str(excinfo.value)


def test_injection_in_a_feature_name_is_refused(tmp_path):
    models = write_spec(tmp_path, features={"numeric": ["tenure_days", "x); delete from predictions.churn_scores; --"]})
    with pytest.raises(SpecError, match="features.numeric"):
        load_spec("churn", models)


def test_unknown_key_is_named(tmp_path):
    models = write_spec(tmp_path, entity_kee="customer_id")
    with pytest.raises(SpecError, match="entity_kee"):
        load_spec("churn", models)


def test_missing_key_is_named(tmp_path):
    models = write_spec(tmp_path)
    raw = yaml.safe_load((models / "churn" / "model.yaml").read_text())
    del raw["target"]
    (models / "churn" / "model.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match="'target'"):
        load_spec("churn", models)


def test_bad_alias_is_refused(tmp_path):
    models = write_spec(tmp_path, alias="champion'; --")
    with pytest.raises(SpecError, match="alias"):
        load_spec("churn", models)


def test_name_must_match_folder(tmp_path):
    models = write_spec(tmp_path, name="other")
    with pytest.raises(SpecError, match="must match its folder"):
        load_spec("churn", models)


def test_unknown_model_lists_known_ones(tmp_path):
    shutil.copytree(MODELS_DIR / "churn", tmp_path / "churn")
    with pytest.raises(SpecError, match="known models: churn"):
        load_spec("nosuchmodel", tmp_path)


def test_quote_refuses_anything_but_plain_names():
    assert quote("churn_scores") == '"churn_scores"'
    with pytest.raises(SpecError, match="table"):
        check_identifier('a"b', "table")
    with pytest.raises(SpecError, match="at most 63"):
        check_identifier("x" * 64, "table")
