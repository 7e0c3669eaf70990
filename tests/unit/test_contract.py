"""A version's input contract: what it stores, how it encodes a row, what it refuses."""

from dataclasses import replace

import pyarrow as pa
import pytest

from pipelines.config.contract import InputContract
from pipelines.domain.errors import ContractError, FeatureSchemaError


@pytest.fixture
def contract(spec):
    return InputContract.for_spec(spec, {"customer_id": pa.int64()})


def test_the_contract_round_trips_through_json(contract):
    import json

    assert InputContract.from_dict(json.loads(json.dumps(contract.to_dict()))) == contract
    assert contract.to_dict()["features"][-3] == {
        "name": "plan",
        "kind": "categorical",
        "categories": ["basic", "standard", "premium"],
    }


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda s: replace(
                s, categorical_features={**s.categorical_features, "plan": ("basic", "standard", "premium", "vip")}
            ),
            "plan",
        ),
        (lambda s: replace(s, categorical_features={**s.categorical_features, "plan": ("basic", "premium")}), "plan"),
        (
            lambda s: replace(
                s,
                numeric_features=s.numeric_features[:-1],
                categorical_features={**s.categorical_features, s.numeric_features[-1]: ("a", "b")},
            ),
            "is numeric in the input contract",
        ),
        (lambda s: replace(s, key_columns=("account_id",)), "keyed by"),
    ],
)
def test_a_spec_that_would_read_rows_differently_is_refused(contract, spec, change, message):
    with pytest.raises(ContractError, match=message):
        contract.check_spec(change(spec), "models:/churn/7")


def test_extra_features_in_a_newer_spec_are_reported_not_refused(contract, spec):
    newer = replace(spec, numeric_features=(*spec.numeric_features, "brand_new"))
    assert contract.check_spec(newer, "models:/churn/7") == ["brand_new"]


def test_numbers_of_every_type_encode_the_same_and_unknown_categories_are_missing(contract, spec):
    import decimal

    import numpy as np

    n = 4
    base = {name: pa.array([1.25, None, 3.5, 10.0]) for name in spec.numeric_features}
    rows = {"customer_id": pa.array([1, 2, 3, 4]), **base}
    rows |= {
        name: pa.array(["basic", None, "nope", values[-1]]) if name == "plan" else pa.array([values[0]] * n)
        for name, values in spec.categorical_features.items()
    }
    doubles = contract.matrix(pa.table(rows))
    as_decimal = {
        name: pa.array([None if v is None else decimal.Decimal(str(v)) for v in a.to_pylist()], pa.decimal128(18, 2))
        for name, a in base.items()
    }
    decimals = contract.matrix(pa.table(rows | as_decimal))
    assert np.array_equal(doubles, decimals, equal_nan=True)
    plan = list(contract.feature_names).index("plan")
    assert doubles[0, plan] == 0 and np.isnan(doubles[1, plan]) and np.isnan(doubles[2, plan]) and doubles[3, plan] == 2


def test_text_keys_keep_their_leading_zeros(spec):
    contract = InputContract.for_spec(replace(spec, key_columns=("invoice_number",)), {"invoice_number": pa.string()})
    [keys] = contract.keys(pa.table({"invoice_number": pa.array(["INV-00001234", "00123"])}))
    assert keys.to_pylist() == ["INV-00001234", "00123"] and keys.type == pa.string()
    with pytest.raises(FeatureSchemaError, match="key column 'invoice_number' has type BIGINT"):
        contract.check_columns({"invoice_number": "BIGINT", **dict.fromkeys(contract.feature_names, "DOUBLE")}, "analytics.t")
