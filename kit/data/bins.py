"""Bin edges of numeric columns for piecewise-linear embeddings (Gorishniy et al., "On
Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS 2022).

Fitted per fold on the training rows as the network sees them (after the fold's
NumericPreprocessor: imputed, scaled), with `rtdl_num_embeddings.compute_bins` (quantile
edges, at most `n_bins` per column). That function refuses a constant column; such a
column (constant within a fold's training rows, e.g. a rare flag) gets the two edges
value - 1 and value + 1, so its embedding is a plain linear one. The edges are fold state:
saved in the fold's preprocessors.json and read back by predict, resume and kernels.

    bins = NumericBins(n_bins=48).fit(x_train)     # x_train: (N, C) float32, no NaN
    model = build_model("tabm", ..., bins=bins.edges)
"""

from __future__ import annotations

import numpy as np


class NumericBins:
    def __init__(self, n_bins: int = 48) -> None:
        self.n_bins = n_bins
        self.edges: list[np.ndarray] = []

    def fit(self, x: np.ndarray) -> NumericBins:
        import torch
        from rtdl_num_embeddings import compute_bins

        x = np.asarray(x, np.float32)
        n_columns = x.shape[1]
        varying = (x.min(axis=0) < x.max(axis=0)) if len(x) > 2 else np.zeros(n_columns, bool)
        fitted = {}
        if varying.any():  # compute_bins needs 1 < n_bins < rows
            edges = compute_bins(torch.as_tensor(x[:, varying]),
                                 n_bins=min(self.n_bins, len(x) - 1))
            fitted = dict(zip(np.flatnonzero(varying).tolist(), edges))
        centre = x[0] if len(x) else np.zeros(n_columns, np.float32)
        self.edges = [fitted[j].double().numpy() if j in fitted
                      else np.array([centre[j] - 1.0, centre[j] + 1.0]) for j in range(n_columns)]
        return self

    def state_dict(self) -> dict:
        return {"n_bins": self.n_bins, "edges": [e.tolist() for e in self.edges]}

    @classmethod
    def from_state(cls, state: dict) -> NumericBins:
        obj = cls(state["n_bins"])
        obj.edges = [np.asarray(e, np.float64) for e in state["edges"]]
        return obj
