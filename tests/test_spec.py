import shutil

import pytest
import yaml

from pipelines.errors import SpecError
from pipelines.identifiers import check_identifier, quote
from pipelines.settings import MODELS_DIR
from pipelines.spec import list_models, load_spec


def write_spec(tmp_path, **changes):
    folder = tmp_path / "churn"
    folder.mkdir(parents=True, exist_ok=True)
    raw = yaml.safe_load((MODELS_DIR / "churn" / "model.yaml").read_text())
    raw.update(changes)
    (folder / "model.yaml").write_text(yaml.safe_dump(raw))
    return tmp_path


def test_churn_spec_loads():
    spec = load_spec("churn")
    assert spec.entity_key == "customer_id"
    assert spec.feature_names[-3:] == ("plan", "region", "channel")
    assert spec.predictions_table == "churn_scores"
    assert spec.suite_path.is_file()
    assert "churn" in list_models()


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
    with pytest.raises(ValueError, match="table"):
        check_identifier('a"b', "table")
