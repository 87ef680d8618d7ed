"""The tabular network and its exportable serving form.

``TabularNet`` takes standardized numbers and category indices:

- each number goes through a numerical embedding (Gorishniy et al. 2022, "On
  Embeddings for Numerical Features in Tabular Deep Learning"): ``piecewise`` is the
  piecewise-linear encoding over quantile bins of the training split plus a linear
  term (their PLE, version B of the rtdl package: the piecewise part starts at zero,
  so the net starts as a linear embedding); ``periodic`` is PLR (sin/cos of learned
  frequencies, a linear layer, ReLU); ``none`` feeds the standardized number as is;
- each category goes through an embedding (index 0: unknown);
- the concatenation goes through an MLP that is a parameter-efficient ensemble of
  ``ensemble`` members (TabM, Gorishniy et al. 2024): one shared weight matrix per
  layer, per-member rank-1 adapters (input and output scaling) and biases, one output
  head per member. Training averages the members' losses; predictions average the
  members' probabilities (or values).

``ServingModel`` wraps it with the fitted standardization, imputation and output
transformation, so the exported program takes raw numbers (NaN for missing) and
category indices and returns probabilities (classification) or values in label
units (regression). Bins and every other constant are tensors of the module: the
exported archive holds them as weights, not pickles.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from kfp_mlops.components.train.config import NUMERIC_EMBEDDINGS  # noqa: F401 - the one list, torch-free
from kfp_mlops.components.train.preprocessing import Preprocessing

BIG = 1e9


def embedding_size(cardinality: int) -> int:
    return int(min(16, max(2, round(1.6 * cardinality**0.56))))


ROWS_PER_BIN = 16


def bins_for(requested: int, rows: int) -> int:
    """``requested`` bins, fewer for a small training split: at least ``ROWS_PER_BIN`` rows per bin
    (edges from a handful of rows are noise, and a small table overfits them)."""
    return max(2, min(requested, rows // ROWS_PER_BIN))


def quantile_bins(x: torch.Tensor, n_bins: int) -> list[torch.Tensor]:
    """Per column of standardized training values: sorted distinct quantile edges (at least two)."""
    edges = []
    q = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
    for j in range(x.shape[1]):
        values = x[:, j].double()
        values = values[torch.isfinite(values)]
        if len(values) == 0:
            e = torch.tensor([-1.0, 1.0], dtype=torch.float64)
        else:
            e = torch.unique(torch.quantile(values, q) if len(values) <= 16_000_000 else torch.quantile(values[:: len(values) // 1_000_000 + 1], q))
            if len(e) < 2:
                e = torch.cat([e - 1, e + 1])
        edges.append(e.float())
    return edges


class PiecewiseLinearEmbeddings(nn.Module):
    """(B, F) standardized numbers -> (B, F, d): linear term + piecewise-linear encoding through a per-feature linear map."""

    def __init__(self, edges: list[torch.Tensor], d: int) -> None:
        super().__init__()
        n_features, n_bins = len(edges), max(len(e) - 1 for e in edges)
        left = torch.zeros(n_features, n_bins)
        width = torch.ones(n_features, n_bins)
        low = torch.zeros(n_features, n_bins)
        high = torch.zeros(n_features, n_bins)  # padding bins: always 0
        for j, e in enumerate(edges):
            m = len(e) - 1
            left[j, :m] = e[:-1]
            width[j, :m] = (e[1:] - e[:-1]).clamp_min(1e-6)
            high[j, :m] = 1.0
            low[j, 0] = -BIG  # below the first edge: extrapolate linearly
            high[j, m - 1] = BIG  # above the last edge: extrapolate linearly
        self.register_buffer("left", left)
        self.register_buffer("width", width)
        self.register_buffer("low", low)
        self.register_buffer("high", high)
        bound = 1 / math.sqrt(d)
        self.linear_weight = nn.Parameter(torch.empty(n_features, d).uniform_(-bound, bound))
        self.linear_bias = nn.Parameter(torch.empty(n_features, d).uniform_(-bound, bound))
        self.piecewise = nn.Parameter(torch.zeros(n_features, n_bins, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded = torch.minimum(torch.maximum((x.unsqueeze(-1) - self.left) / self.width, self.low), self.high)  # (B, F, T)
        piecewise = torch.einsum("bft,ftd->bfd", encoded, self.piecewise)
        return x.unsqueeze(-1) * self.linear_weight + self.linear_bias + piecewise


class PeriodicEmbeddings(nn.Module):
    """PLR: (B, F) -> (B, F, d) = ReLU(Linear_f([cos(2 pi c_f x), sin(2 pi c_f x)]))."""

    def __init__(self, n_features: int, d: int, frequencies: int = 16, scale: float = 0.1) -> None:
        super().__init__()
        self.frequencies = nn.Parameter(torch.randn(n_features, frequencies) * scale)
        bound = 1 / math.sqrt(2 * frequencies)
        self.weight = nn.Parameter(torch.empty(n_features, 2 * frequencies, d).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = 2 * math.pi * self.frequencies * x.unsqueeze(-1)
        periodic = torch.cat([torch.cos(v), torch.sin(v)], dim=-1)
        return torch.relu(torch.einsum("bfp,fpd->bfd", periodic, self.weight) + self.bias)


class EnsembleLinear(nn.Module):
    """BatchEnsemble linear layer: (B, k, d_in) -> (B, k, d_out) = ((x * r_i) W) * s_i + b_i with W shared."""

    def __init__(self, d_in: int, d_out: int, k: int, *, random_signs: bool) -> None:
        super().__init__()
        shared = nn.Linear(d_in, d_out)
        self.weight = nn.Parameter(shared.weight.detach().t().contiguous())
        self.bias = nn.Parameter(shared.bias.detach().repeat(k, 1))
        r = torch.ones(k, d_in)
        if random_signs and k > 1:
            r = torch.where(torch.rand(k, d_in) < 0.5, -r, r)
        self.r = nn.Parameter(r)
        self.s = nn.Parameter(torch.ones(k, d_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(x * self.r, self.weight) * self.s + self.bias


class TabularNet(nn.Module):
    """Numerical and categorical embeddings, then a TabM ensemble MLP; output (B, k) or (B, k, classes)."""

    def __init__(
        self,
        n_numeric: int,
        cardinalities: list[int],
        hidden: list[int],
        outputs: int,
        dropout: float = 0.1,
        *,
        numeric_embedding: str = "none",
        edges: list[torch.Tensor] | None = None,
        d_numeric: int = 16,
        ensemble: int = 1,
    ) -> None:
        super().__init__()
        if numeric_embedding not in NUMERIC_EMBEDDINGS:
            raise ValueError(f"numeric_embedding {numeric_embedding!r} is not one of {NUMERIC_EMBEDDINGS}")
        self.outputs, self.k = outputs, ensemble
        self.numeric_embedding = numeric_embedding if n_numeric else "none"
        if self.numeric_embedding == "piecewise":
            assert edges is not None and len(edges) == n_numeric
            self.numeric = PiecewiseLinearEmbeddings(edges, d_numeric)
            width = n_numeric * d_numeric
        elif self.numeric_embedding == "periodic":
            self.numeric = PeriodicEmbeddings(n_numeric, d_numeric)
            width = n_numeric * d_numeric
        else:
            self.numeric = nn.Identity()
            width = n_numeric
        self.embeddings = nn.ModuleList(nn.Embedding(c + 1, embedding_size(c + 1)) for c in cardinalities)
        width += sum(e.embedding_dim for e in self.embeddings)
        self.layers = nn.ModuleList()
        for i, size in enumerate(hidden):
            self.layers.append(EnsembleLinear(width, size, ensemble, random_signs=i == 0))
            width = size
        self.dropout = nn.Dropout(dropout)
        head = nn.Linear(width, outputs)
        self.head_weight = nn.Parameter(head.weight.detach().t().unsqueeze(0).repeat(ensemble, 1, 1))  # (k, width, outputs)
        self.head_bias = nn.Parameter(head.bias.detach().repeat(ensemble, 1))

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        x = self.numeric(numeric)
        parts = [x.flatten(1)] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        h = torch.cat(parts, dim=1).unsqueeze(1).expand(-1, self.k, -1)  # (B, k, width)
        for layer in self.layers:
            h = self.dropout(torch.relu(layer(h)))
        out = torch.einsum("bkw,kwo->bko", h, self.head_weight) + self.head_bias  # (B, k, outputs)
        return out.squeeze(-1) if self.outputs == 1 else out


def build_net(
    prep: Preprocessing,
    hidden: list[int],
    dropout: float,
    *,
    numeric_embedding: str = "none",
    train_numeric: torch.Tensor | None = None,
    bins: int = 32,
    d_numeric: int = 16,
    ensemble: int = 1,
) -> TabularNet:
    """The net for ``prep``; ``train_numeric`` (standardized training numbers) places the piecewise bins."""
    outputs = len(prep.classes) if prep.task == "multiclass" else 1
    edges = None
    if numeric_embedding == "piecewise" and prep.numeric:
        if train_numeric is None:
            raise ValueError("piecewise embeddings need the standardized training numbers for their bins")
        edges = quantile_bins(train_numeric, bins_for(bins, len(train_numeric)))
    return TabularNet(
        len(prep.numeric), [len(c.vocabulary) for c in prep.categorical], hidden, outputs, dropout,
        numeric_embedding=numeric_embedding, edges=edges, d_numeric=d_numeric, ensemble=ensemble,
    )  # fmt: skip


def standardize(numeric: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with missing values (NaN) at the mean, i.e. 0."""
    z = (numeric - mean) / std
    return torch.where(torch.isnan(z), torch.zeros_like(z), z)


def member_outputs(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Per-member probabilities (classification) or standardized values (regression)."""
    if task == "binary":
        return torch.sigmoid(logits)
    if task == "multiclass":
        return torch.softmax(logits, dim=-1)
    return logits


class ServingModel(nn.Module):
    """Raw inputs in, predictions out (the ensemble's mean): what is exported and served."""

    def __init__(self, net: TabularNet, prep: Preprocessing) -> None:
        super().__init__()
        self.net = net
        self.task = prep.task
        self.register_buffer("mean", torch.tensor([c.mean for c in prep.numeric], dtype=torch.float32))
        self.register_buffer("std", torch.tensor([c.std for c in prep.numeric], dtype=torch.float32))
        self.label_mean = float(prep.label_mean)
        self.label_std = float(prep.label_std)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        out = member_outputs(self.net(standardize(numeric, self.mean, self.std), categorical), self.task).mean(dim=1)
        if self.task == "regression":
            return out * self.label_std + self.label_mean
        return out


def export(net: TabularNet, prep: Preprocessing, path: Path) -> None:
    """Save the serving model with torch.export; load it with ``serving.load_program`` (restricted, no pickle).

    The archive keeps its example inputs, and a slice of a tensor saves its whole
    storage: examples cut from the data would put every row of it into the model file.
    The example is made up (zeros, unknown categories) and owns its two rows.
    """
    serving = ServingModel(net, prep).eval()
    batch = torch.export.Dim("batch", min=1)
    example = (torch.zeros(2, len(prep.numeric), dtype=torch.float32), torch.zeros(2, len(prep.categorical), dtype=torch.int64))
    with torch.no_grad():
        program = torch.export.export(serving, example, dynamic_shapes=({0: batch}, {0: batch}))
    torch.export.save(program, str(path))
