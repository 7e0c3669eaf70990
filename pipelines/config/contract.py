"""A model version's input contract: everything that decides how a feature row becomes
the model's input, stored with the version when it is logged.

- the entity key: its columns and their types (integer, text or date), so keys
  round-trip exactly ('00123' stays text, never 123);
- the features in the booster's order, each numeric or categorical;
- each categorical feature's vocabulary: a value's code is its position in the list,
  and a value not in the list (or null) is missing;
- the numeric conversion: every numeric value becomes float64 first, then float32,
  so DECIMAL, NUMERIC, integer, REAL and DOUBLE columns holding the same values give
  bit-identical inputs (a direct DECIMAL -> float32 cast lands one step off for about
  a quarter of values). Null and NaN are missing.

Training and scoring both build the matrix with `InputContract.matrix`, so a version
is always scored with the encoding it was trained with, whatever the spec says today.
Scoring refuses a spec or a feature table that disagrees with the contract, naming
the feature and both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines.domain.errors import ContractError, FeatureSchemaError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from pipelines.config.spec import ModelSpec

FORMAT = 1
KEY_TYPES = ("int64", "string", "date32")


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "numeric" | "categorical"
    categories: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"categorical {list(self.categories)}" if self.kind == "categorical" else "numeric"


@dataclass(frozen=True)
class InputContract:
    key: tuple[tuple[str, str], ...]  # (column, Arrow type name: int64 | string | date32)
    features: tuple[Feature, ...]

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def key_columns(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.key)

    @classmethod
    def for_spec(cls, spec: ModelSpec, key_types: dict[str, pa.DataType]) -> InputContract:
        """The contract of a version trained now on `spec`, whose key columns arrived as `key_types`."""
        key = []
        for column in spec.key_columns:
            key.append((column, _key_type(key_types[column], column)))
        features = [Feature(name, "numeric") for name in spec.numeric_features]
        features += [Feature(name, "categorical", values) for name, values in spec.categorical_features.items()]
        return cls(tuple(key), tuple(features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "key": [{"name": name, "type": kind} for name, kind in self.key],
            "features": [
                {"name": f.name, "kind": f.kind, **({"categories": list(f.categories)} if f.kind == "categorical" else {})}
                for f in self.features
            ],
            "encoding": {
                "numeric": "float64, then float32; null and NaN are missing",
                "categorical": "the value's position in categories, as float32; null or unlisted is missing",
            },
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> InputContract:
        if raw.get("format") != FORMAT:
            raise ContractError(f"input contract format {raw.get('format')!r} is not one this batchpred reads ({FORMAT})")
        key = tuple((k["name"], k["type"]) for k in raw["key"])
        features = tuple(Feature(f["name"], f["kind"], tuple(f.get("categories") or ())) for f in raw["features"])
        return cls(key, features)

    def key_fields(self) -> list[pa.Field]:
        """The key columns as Arrow fields, for every table batchpred writes them to."""
        import pyarrow as pa

        types = {"int64": pa.int64(), "string": pa.string(), "date32": pa.date32()}
        return [pa.field(name, types[kind], nullable=False) for name, kind in self.key]

    # -- checks, before a row is read -------------------------------------------

    def check_spec(self, spec: ModelSpec, version: str) -> list[str]:
        """Refuse (ContractError) a spec that would read rows differently from this version.

        Every feature of the version must be in the spec, of the same kind, with the same
        vocabulary in the same order, and the features both list must come in the same
        order. The spec may list features the version does not use (a newer spec, trained
        into a challenger); they are returned so the caller can say so.
        """
        where = f"models/{spec.name}/model.yaml"
        if spec.key_columns != self.key_columns:
            raise ContractError(
                f"{version} is keyed by {list(self.key_columns)}, but {where} says entity_key {list(spec.key_columns)}; "
                "restore the entity_key, or train and promote a version for the new one"
            )
        declared = {name: Feature(name, "numeric") for name in spec.numeric_features}
        declared |= {name: Feature(name, "categorical", values) for name, values in spec.categorical_features.items()}
        for feature in self.features:
            mine = declared.get(feature.name)
            if mine is None:
                raise ContractError(
                    f"{version} was trained on feature {feature.name} ({feature.describe()}), which {where} no longer "
                    "lists; restore it, or train and promote a version without it"
                )
            if mine != feature:
                codes = " (a categorical value's code is its position in the list)" if feature.kind == "categorical" else ""
                raise ContractError(
                    f"feature {feature.name} is {feature.describe()} in the input contract of {version} but "
                    f"{mine.describe()} in {where}{codes}; restore it as the version has it, or train and promote a "
                    "new version"
                )
        shared = [name for name in spec.feature_names if name in self.feature_names]
        if shared != list(self.feature_names):
            raise ContractError(
                f"the features of {version} come in the order {list(self.feature_names)}, but {where} lists them in "
                f"the order {shared}; the order is part of the version's input, so restore it, or train and "
                "promote a new version"
            )
        return [name for name in spec.feature_names if name not in self.feature_names]

    def check_columns(self, columns: dict[str, str], where: str) -> None:
        """Refuse (FeatureSchemaError) a feature table that lacks a column this version reads
        or has one of the wrong kind. `columns` maps column name to SQL type name."""
        from pipelines.domain.sql_types import type_family

        needed = [*self.key_columns, *self.feature_names]
        missing = [c for c in needed if c not in columns]
        if missing:
            raise FeatureSchemaError(f"{where} is missing column(s) {missing} that the model version reads")
        for name, kind in self.key:
            family = type_family(columns[name])
            wanted = {"int64": "integer", "string": "text", "date32": "date"}[kind]
            if family != wanted:
                raise FeatureSchemaError(
                    f"{where} key column {name!r} has type {columns[name]}; the model version's keys are {wanted}"
                )
        for feature in self.features:
            family = type_family(columns[feature.name])
            if feature.kind == "numeric" and family not in ("integer", "float"):
                raise FeatureSchemaError(
                    f"{where} column {feature.name!r} has type {columns[feature.name]}; the model version needs a number"
                )
            if feature.kind == "categorical" and family != "text":
                raise FeatureSchemaError(
                    f"{where} column {feature.name!r} has type {columns[feature.name]}; the model version needs text"
                )

    # -- encoding ------------------------------------------------------------------

    def matrix(self, rows: pa.RecordBatch | pa.Table) -> np.ndarray:
        """A (rows x features) float32 matrix in this contract's order (column-major view)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        # Filled one feature at a time into a (features x rows) buffer, so every write is a
        # contiguous run, and returned transposed: a column-major (Fortran-order) view of
        # (rows x features) with no further copy. XGBoost reads it as fast as row-major.
        out = np.empty((len(self.features), rows.num_rows), dtype=np.float32)
        for i, feature in enumerate(self.features):
            column = rows.column(feature.name)
            if feature.kind == "numeric":
                # Arrow turns nulls into NaN when it converts a floating-point column to numpy.
                out[i] = _to_numpy(pc.cast(pc.cast(column, pa.float64()), pa.float32()))
            else:
                codes = pc.index_in(column, value_set=pa.array(feature.categories, pa.string()))
                out[i] = _to_numpy(codes.cast(pa.float32()))
        return out.T

    def keys(self, rows: pa.RecordBatch | pa.Table) -> list[pa.Array]:
        """The key columns of `rows`, as the contract's types (a safe cast: never '00123' -> 123)."""
        return [rows.column(field.name).cast(field.type) for field in self.key_fields()]


def _key_type(arrow_type: pa.DataType, column: str) -> str:
    import pyarrow as pa

    if pa.types.is_integer(arrow_type):
        return "int64"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_date(arrow_type):
        return "date32"
    raise FeatureSchemaError(f"entity key column {column!r} has type {arrow_type}; keys may be integers, text or dates")


def _to_numpy(values: Any) -> np.ndarray:
    import pyarrow as pa

    array: np.ndarray = values.to_numpy(zero_copy_only=False) if isinstance(values, pa.Array) else values.to_numpy()
    return array
