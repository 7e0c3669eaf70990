"""Turn feature rows (Arrow) into the float32 matrix the booster reads.

Training and scoring both go through `feature_matrix`, so a model can never be
scored with a different encoding from the one it was trained with.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.errors import FeatureSchemaError
from pipelines.spec import ModelSpec


def check_feature_columns(spec: ModelSpec, columns: dict[str, str], where: str) -> None:
    """Refuse a feature table that lacks a feature column or has one of the wrong kind.

    `columns` maps column name to SQL type name (from the warehouse catalogue).
    """
    missing = [c for c in (spec.entity_key, *spec.feature_names) if c not in columns]
    if missing:
        raise FeatureSchemaError(f"{where} is missing column(s) {missing} that model {spec.name!r} needs")
    numeric_markers = ("INT", "DOUBLE", "FLOAT", "REAL", "DECIMAL", "NUMERIC", "BIGINT", "SMALLINT", "HUGEINT")
    for column in spec.numeric_features:
        kind = columns[column].upper()
        if not any(m in kind for m in numeric_markers):
            raise FeatureSchemaError(f"{where} column {column!r} has type {columns[column]}; model {spec.name!r} needs a number")
    for column in spec.categorical_features:
        kind = columns[column].upper()
        if not any(m in kind for m in ("CHAR", "TEXT", "STRING")):
            raise FeatureSchemaError(f"{where} column {column!r} has type {columns[column]}; model {spec.name!r} needs text")


def feature_matrix(rows: pa.RecordBatch | pa.Table, spec: ModelSpec) -> np.ndarray:
    """A (rows x features) float32 matrix in `spec.feature_names` order (column-major).

    Nulls become NaN (XGBoost's missing value). A categorical value becomes its
    position in the spec's list; a value not in the list becomes NaN.
    """
    # Filled one feature at a time into a (features x rows) buffer, so every write is a
    # contiguous run, and returned transposed: a column-major (Fortran-order) view of
    # (rows x features) with no further copy. XGBoost reads it as fast as row-major.
    out = np.empty((len(spec.feature_names), rows.num_rows), dtype=np.float32)
    # Arrow turns nulls into NaN when it converts a floating-point column to numpy.
    for i, column in enumerate(spec.numeric_features):
        out[i] = _to_numpy(rows.column(column).cast(pa.float32()))
    offset = len(spec.numeric_features)
    for j, (column, allowed) in enumerate(spec.categorical_features.items()):
        codes = pc.index_in(rows.column(column), value_set=pa.array(allowed, pa.string()))
        out[offset + j] = _to_numpy(codes.cast(pa.float32()))
    return out.T


def _to_numpy(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return values.to_numpy(zero_copy_only=False) if isinstance(values, pa.Array) else values.to_numpy()
