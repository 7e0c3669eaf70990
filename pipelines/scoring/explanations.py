"""Per-row reasons: each scored row's top-k features by contribution to its margin (log-odds).

XGBoost computes the contributions (`pred_contribs`): each feature's share of the
row's margin, plus a base value, summing exactly to the margin. Exact TreeSHAP
(Lundberg et al. 2020, "From local explanations to global understanding with
explainable AI for trees") costs about 500x a plain prediction here; the approximate
method (Saabas 2014, "Interpreting random forests": each split's change in expected
value credited to its feature) about 4x in XGBoost, and about 1.4x with `SaabasForest`,
which gives the same numbers. The policy (`reasons` in model.yaml):

- `default`: approximate for every row, exact TreeSHAP for the highest-scored rows
  (`exact_share` of the date, at most `exact_cap`; with shards, each shard's share);
- `approximate` or `exact`: that method for every row;
- `off`: no reasons.

`ReasonStream` works inside the scoring stream: it takes each batch's keys, model inputs and
scores, spools the reason rows to a file (memory stays bounded by the batch), keeps the
inputs of the highest-scored rows seen so far, and at the end gives the rows to write,
each with its `reason_method`. It also sums |contribution| per feature, for the date's
attribution profile (`monitoring.feature_attributions`).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.config.contract import InputContract
from pipelines.config.spec import ReasonsPolicy

if TYPE_CHECKING:
    import xgboost as xgb

log = logging.getLogger(__name__)

APPROXIMATE, EXACT = "approximate", "tree_shap"


def contributions(booster: xgb.Booster, matrix: np.ndarray, feature_names: tuple[str, ...], exact: bool) -> np.ndarray:
    """(rows x features+1) contributions to the margin, the base value last (XGBoost `pred_contribs`)."""
    import xgboost as xgb

    data = xgb.DMatrix(matrix, missing=np.nan, feature_names=list(feature_names))
    return booster.predict(data, pred_contribs=True, approx_contribs=not exact, validate_features=False)


class SaabasForest:
    """Approximate (Saabas) contributions at the cost of one prediction.

    A row's Saabas contributions from one tree depend only on the leaf it reaches: walking
    from the root, each split credits its feature with the change in the node's expected
    value (Saabas 2014, "Interpreting random forests"; XGBoost's `approx_contribs`: a node's
    expected value is its children's, weighted by their hessian sums, and a leaf's is its
    value). So each leaf's contribution vector is fixed, and a forest of the same trees with
    those vectors as leaf values (an XGBoost multi-output model) predicts every row's
    contributions in one pass of XGBoost's predictor, where `pred_contribs` walks each row
    through each tree separately and costs about 4x a prediction. The base value (the model's
    base margin plus every tree's root expectation) is the same for every row.

    `of` returns None for a model this does not cover (not a single-output gbtree of numeric
    splits, one feature, or so many nodes times features that the forest would not fit in
    memory comfortably), and `check` compares it with XGBoost's own `pred_contribs` on rows:
    the numbers are XGBoost's up to float32 rounding, or the stream falls back to it.
    """

    def __init__(self, forest: xgb.Booster, n_features: int) -> None:
        self.forest, self.n_features = forest, n_features
        self.base_value: float | None = None  # set by check, from XGBoost's own bias column

    @classmethod
    def of(cls, booster: xgb.Booster) -> SaabasForest | None:
        import xgboost as xgb

        model = json.loads(booster.save_raw("json"))
        learner = model["learner"]
        params, gbtree = learner["learner_model_param"], learner["gradient_booster"]
        n = int(params["num_feature"])
        if gbtree["name"] != "gbtree" or params.get("num_target", "1") != "1" or int(params.get("num_class", "0")) > 1 or n < 2:
            return None
        trees = gbtree["model"]["trees"]
        if any(any(tree["split_type"]) for tree in trees) or sum(len(t["left_children"]) for t in trees) * n > MAX_FOREST_VALUES:
            return None
        forest = {
            "version": model["version"],
            "learner": {
                "attributes": {},
                "feature_names": [],
                "feature_types": [],
                "learner_model_param": {
                    "base_score": "[" + ",".join(["0"] * n) + "]",
                    "boost_from_average": "0",
                    "num_class": "0",
                    "num_feature": str(n),
                    "num_target": str(n),
                },
                "objective": {"name": "reg:squarederror", "reg_loss_param": {"scale_pos_weight": "1"}},
                "gradient_booster": {
                    "name": "gbtree",
                    "model": {
                        **({"cats": gbtree["model"]["cats"]} if "cats" in gbtree["model"] else {}),
                        "gbtree_model_param": gbtree["model"]["gbtree_model_param"],
                        "iteration_indptr": gbtree["model"]["iteration_indptr"],
                        "tree_info": [0] * len(trees),
                        "trees": [_leaf_contributions(tree, n) for tree in trees],
                    },
                },
            },
        }
        return cls(xgb.Booster(model_file=bytearray(json.dumps(forest).encode())), n)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        """(rows x features+1) contributions, the base value last, as `contributions` gives them."""
        assert self.base_value is not None, "check() first"
        out = np.empty((len(matrix), self.n_features + 1), dtype=np.float32)
        out[:, :-1] = self.forest.inplace_predict(matrix).reshape(len(matrix), self.n_features)
        out[:, -1] = self.base_value
        return out

    def check(self, booster: xgb.Booster, matrix: np.ndarray, feature_names: tuple[str, ...]) -> bool:
        """True when these rows' contributions are XGBoost's `approx_contribs` (up to float32
        rounding of sums over the trees); the base value is then XGBoost's."""
        reference = contributions(booster, matrix, feature_names, exact=False)
        bias = reference[:, -1]
        if not len(bias) or not np.all(bias == bias[0]):
            return False
        self.base_value = float(bias[0])
        ours = self(matrix)
        scale = max(1.0, float(np.abs(reference).max()))
        return bool(np.allclose(ours, reference, rtol=1e-4, atol=1e-5 * scale))


def _leaf_contributions(tree: dict[str, Any], n_features: int) -> dict[str, Any]:
    """One tree of `SaabasForest`: the same splits, each leaf holding its path's contributions."""
    left, right = tree["left_children"], tree["right_children"]
    feature, value, hessian = tree["split_indices"], tree["split_conditions"], tree["sum_hessian"]
    nodes = len(left)
    expected = np.zeros(nodes)
    order, stack = [], [0]
    while stack:  # pre-order from the root: only reachable nodes (a pruned tree keeps deleted slots)
        node = stack.pop()
        order.append(node)
        if left[node] != -1:
            stack += [left[node], right[node]]
    for node in reversed(order):  # children before parents
        if left[node] == -1:
            expected[node] = value[node]  # a leaf's split condition holds its value
        else:
            a, b = left[node], right[node]
            expected[node] = (expected[a] * hessian[a] + expected[b] * hessian[b]) / hessian[node]
    path = np.zeros((nodes, n_features))
    for node in order:  # parents before children
        if left[node] != -1:
            for child in (left[node], right[node]):
                path[child] = path[node]
                path[child, feature[node]] += expected[child] - expected[node]
    leaves = [node for node in range(nodes) if left[node] == -1]
    leaf_index = {node: i for i, node in enumerate(leaves)}
    return {
        "base_weights": [0.0] * (nodes * n_features),
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": tree["default_left"],
        "id": tree["id"],
        "leaf_weights": path[leaves].astype(np.float32).ravel().tolist(),
        "left_children": left,
        "right_children": [leaf_index[node] if left[node] == -1 else right[node] for node in range(nodes)],
        "loss_changes": [0.0] * nodes,
        "parents": [-1 if node == 0 else p for node, p in enumerate(tree["parents"])],
        "split_conditions": [0.0 if left[node] == -1 else value[node] for node in range(nodes)],
        "split_indices": feature,
        "split_type": [0] * nodes,
        "sum_hessian": hessian,
        "tree_param": {
            "num_deleted": "0",
            "num_feature": str(n_features),
            "num_nodes": str(nodes),
            "size_leaf_vector": str(n_features),
        },
    }


SAABAS_FROM_ROWS = 50_000
# The forest holds a value per node and feature (300 trees of 127 nodes over 40 features:
# 1.5M); past this many, building it would take gigabytes: XGBoost's own contributions instead.
MAX_FOREST_VALUES = 20_000_000


def _saabas(booster: xgb.Booster) -> SaabasForest | None:
    try:
        return SaabasForest.of(booster)
    except Exception as exc:  # noqa: BLE001 - XGBoost's own contributions are the fallback
        log.warning("fast approximate contributions unavailable for this model (%s): using XGBoost's (slower)", exc)
        return None


class ReasonStream:
    def __init__(
        self,
        booster: xgb.Booster,
        contract: InputContract,
        policy: ReasonsPolicy,
        schema: pa.Schema,
        constants: dict[str, Any],
        expected_rows: int,
        spool_dir: Path | None = None,
    ) -> None:
        """`schema` is the reasons table's (staged or not); `constants` gives the columns every
        row repeats (as_of_date, model_version, scoring_run_id, and shard when staged)."""
        self.booster, self.contract, self.policy, self.schema = booster, contract, policy, schema
        self.names = contract.feature_names
        self.k = min(policy.top_k, len(self.names))
        self.constants = constants
        self.keep = 0 if policy.method != "default" else min(policy.exact_cap, math.ceil(policy.exact_share * expected_rows))
        self.abs_sum = np.zeros(len(self.names))
        self.rows = 0
        # Building the forest takes about 0.5 s, what XGBoost's contributions take for 40k rows.
        self._saabas = _saabas(booster) if policy.method != "exact" and expected_rows >= SAABAS_FROM_ROWS else None
        self._checked = False
        self._spool = tempfile.NamedTemporaryFile(prefix="batchpred-reasons-", suffix=".arrows", dir=spool_dir, delete=False)
        self._writer: pa.RecordBatchStreamWriter | None = None
        self._top_scores = np.empty(0, dtype=np.float32)
        self._top_rows = np.empty(0, dtype=np.int64)
        self._top_inputs = np.empty((0, len(self.names)), dtype=np.float32)
        self._top_keys: pa.Table | None = None
        # Categorical labels: one dictionary for every feature's categories, indexed per (feature, code).
        labels = [c for f in contract.features if f.kind == "categorical" for c in f.categories]
        self._labels = pa.array(labels, pa.string())
        offsets, at = [], 0
        for f in contract.features:
            offsets.append(at if f.kind == "categorical" else -1)
            at += len(f.categories) if f.kind == "categorical" else 0
        self._label_offset = np.array(offsets, dtype=np.int64)

    def add(self, keys: list[pa.Array], matrix: np.ndarray, scores: np.ndarray) -> None:
        """Reasons for one scored batch (keys as the table's types, inputs as the model read them)."""
        exact = self.policy.method == "exact"
        contrib = self._fast(matrix) if self._saabas is not None else None
        if contrib is None:
            contrib = contributions(self.booster, matrix, self.names, exact)
        self.abs_sum += np.abs(contrib[:, :-1]).sum(axis=0, dtype=np.float64)
        batch = self._batch(keys, matrix, contrib, EXACT if exact else APPROXIMATE, np.arange(self.rows, self.rows + len(scores)))
        if self._writer is None:
            self._writer = pa.ipc.new_stream(self._spool, batch.schema)
        self._writer.write_batch(batch)
        if self.keep:
            self._track_top(keys, matrix, scores)
        self.rows += len(scores)

    def _fast(self, matrix: np.ndarray) -> np.ndarray | None:
        """The batch's approximate contributions from the forest, or None (for good) if it was
        not checked equal to XGBoost's on the first batch, or fails."""
        assert self._saabas is not None
        try:
            if not self._checked:
                self._checked = True
                if not self._saabas.check(self.booster, matrix[:256], self.names):
                    raise ValueError("its contributions differ from XGBoost's for this model")
            return self._saabas(matrix)
        except Exception as exc:  # noqa: BLE001 - XGBoost's own contributions are the fallback
            log.warning("fast approximate contributions unavailable (%s): using XGBoost's (slower)", exc)
            self._saabas = None
            return None

    def _track_top(self, keys: list[pa.Array], matrix: np.ndarray, scores: np.ndarray) -> None:
        """Keep the inputs of the `keep` highest scores seen so far (ties: the earlier row)."""
        n = len(scores)
        take = np.argpartition(-scores, self.keep - 1)[: self.keep] if n > self.keep else np.arange(n)
        batch_keys = pa.table({f.name: k for f, k in zip(self.contract.key_fields(), keys, strict=True)}).take(pa.array(take))
        all_scores = np.concatenate([self._top_scores, scores[take].astype(np.float32)])
        all_rows = np.concatenate([self._top_rows, self.rows + take])
        all_inputs = np.concatenate([self._top_inputs, matrix[take]])
        all_keys = batch_keys if self._top_keys is None else pa.concat_tables([self._top_keys, batch_keys])
        if len(all_scores) > self.keep:
            best = np.lexsort((all_rows, -all_scores))[: self.keep]
            all_scores, all_rows, all_inputs, all_keys = (
                all_scores[best],
                all_rows[best],
                all_inputs[best],
                all_keys.take(pa.array(best)),
            )
        self._top_scores, self._top_rows, self._top_inputs, self._top_keys = (
            all_scores,
            all_rows,
            np.ascontiguousarray(all_inputs),
            all_keys,
        )

    def _batch(
        self, keys: list[pa.Array], matrix: np.ndarray, contrib: np.ndarray, method: str, row_ids: np.ndarray
    ) -> pa.RecordBatch:
        n, k = len(matrix), self.k
        c = contrib[:, :-1]
        top = np.argpartition(-np.abs(c), k - 1, axis=1)[:, :k] if k < c.shape[1] else np.tile(np.arange(c.shape[1]), (n, 1))
        order = np.argsort(-np.abs(np.take_along_axis(c, top, axis=1)), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        rows = np.repeat(np.arange(n), k)
        features = top.ravel()
        values = matrix[rows, features].astype(np.float64)
        offsets = self._label_offset[features]
        labelled = (offsets >= 0) & ~np.isnan(values)
        label_index = np.where(labelled, offsets + np.nan_to_num(values).astype(np.int64), 0)
        label = (
            pa.DictionaryArray.from_arrays(pa.array(label_index, pa.int32(), mask=~labelled), self._labels)
            if len(self._labels)
            else None
        )
        columns = {f.name: key.take(pa.array(rows)) for f, key in zip(self.contract.key_fields(), keys, strict=True)}
        columns |= {
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int32), n)),
            "feature": pa.DictionaryArray.from_arrays(pa.array(features.astype(np.int32)), pa.array(self.names)).cast(
                pa.string()
            ),
            "value": pa.array(values, mask=np.isnan(values)),
            "value_label": label.cast(pa.string()) if label is not None else pa.nulls(n * k, pa.string()),
            "contribution": pa.array(c[rows, features].astype(np.float64)),
            "base_value": pa.array(contrib[rows, -1].astype(np.float64)),
            "reason_method": pa.repeat(pa.scalar(method), n * k),
        }
        out = {}
        for field in self.schema:
            out[field.name] = (
                columns[field.name]
                if field.name in columns
                else pa.repeat(pa.scalar(self.constants[field.name], field.type), n * k)
            )
        out["_row"] = pa.array(np.repeat(row_ids, k))
        return pa.RecordBatch.from_pydict(out)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows to write: every row's reasons, the highest-scored ones' exact (computed now)."""
        if self._writer is not None:
            self._writer.close()
        self._spool.close()
        exact_rows = pa.array(self._top_rows)
        if self.keep and len(self._top_rows):
            contrib = contributions(self.booster, self._top_inputs, self.names, exact=True)
            assert self._top_keys is not None  # kept with the top rows
            keys = [self._top_keys.column(f.name).combine_chunks() for f in self.contract.key_fields()]
            yield self._without_row(self._batch(keys, self._top_inputs, contrib, EXACT, self._top_rows))
        if self._writer is None:
            return
        # A plain file read, not a memory map: mapped pages stay resident (counted in RSS) until
        # the map closes, so reading a 10M-row spool that way held gigabytes.
        with pa.OSFile(self._spool.name, "rb") as source:
            for batch in pa.ipc.open_stream(source):
                if len(exact_rows):
                    batch = batch.filter(pc.invert(pc.is_in(batch.column("_row"), value_set=exact_rows)))
                yield self._without_row(batch)

    def _without_row(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.drop_columns(["_row"]).cast(self.schema) if "_row" in batch.schema.names else batch

    def attribution(self) -> list[dict[str, Any]]:
        """Mean |contribution| per feature over the rows seen, ranked (1 = the largest)."""
        means = self.abs_sum / max(self.rows, 1)
        ranks = np.argsort(-means, kind="stable").argsort() + 1
        return [
            {"feature": name, "rank": int(rank), "mean_abs_contribution": float(mean), "rows": self.rows}
            for name, mean, rank in zip(self.names, means, ranks, strict=True)
        ]

    def close(self) -> None:
        """Remove the spool file."""
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # noqa: BLE001 - already closed
                pass
        self._spool.close()
        Path(self._spool.name).unlink(missing_ok=True)
