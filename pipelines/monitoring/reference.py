"""A version's training reference: what its training data looked like, stored with the
version (MLflow artifact `training_reference.json`) when it is logged, so monitoring
compares every scored date against the data that version learnt from, never against
whatever the spec or the warehouse says today.
"""

from __future__ import annotations

import numpy as np

from pipelines.contract import InputContract


def reference_distribution(matrix: np.ndarray, contract: InputContract) -> dict:
    """Per-feature summary of the training matrix (rows x features, in the contract's order).

    Numeric features: null share, mean, standard deviation, percentiles and a 10-bin
    quantile histogram. Categorical features: null share and the share of each value.
    """
    features = {}
    for i, feature in enumerate(contract.features):
        column = matrix[:, i]
        present = column[~np.isnan(column)]
        entry: dict = {"rows": int(column.size), "null_share": float(1 - present.size / max(column.size, 1))}
        if feature.kind == "categorical":
            counts = np.bincount(present.astype(np.int64), minlength=len(feature.categories))
            entry["kind"] = "categorical"
            entry["shares"] = {v: float(c / max(present.size, 1)) for v, c in zip(feature.categories, counts, strict=True)}
        elif present.size:
            edges = np.unique(np.quantile(present, np.linspace(0, 1, 11)))
            counts, _ = np.histogram(present, bins=edges) if edges.size > 1 else (np.array([present.size]), edges)
            entry.update(
                kind="numeric",
                mean=float(present.mean()),
                std=float(present.std()),
                quantiles={f"p{q}": float(np.quantile(present, q / 100)) for q in (1, 5, 25, 50, 75, 95, 99)},
                histogram={"edges": edges.tolist(), "counts": counts.tolist()},
            )
        features[feature.name] = entry
    return {"features": features}
