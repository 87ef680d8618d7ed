"""The tabular network and its exportable serving form.

``TabularNet`` takes standardized numbers and category indices. ``ServingModel``
wraps it with the fitted standardization, imputation and output transformation, so
the exported program takes raw numbers (NaN for missing) and category indices and
returns probabilities (classification) or values in label units (regression).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from kfp_mlops.components.train.preprocessing import Preprocessing


def embedding_size(cardinality: int) -> int:
    return int(min(16, max(2, round(1.6 * cardinality**0.56))))


class TabularNet(nn.Module):
    """Embeddings for categories, concatenated with numbers, through an MLP."""

    def __init__(self, n_numeric: int, cardinalities: list[int], hidden: list[int], outputs: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c + 1, embedding_size(c + 1)) for c in cardinalities)
        width = n_numeric + sum(e.embedding_dim for e in self.embeddings)
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(dropout)]
            width = size
        layers.append(nn.Linear(width, outputs))
        self.mlp = nn.Sequential(*layers)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        parts = [numeric] + [emb(categorical[:, i]) for i, emb in enumerate(self.embeddings)]
        out = self.mlp(torch.cat(parts, dim=1))
        return out.squeeze(1) if out.shape[1] == 1 else out


def build_net(prep: Preprocessing, hidden: list[int], dropout: float) -> TabularNet:
    outputs = len(prep.classes) if prep.task == "multiclass" else 1
    return TabularNet(len(prep.numeric), [len(c.vocabulary) for c in prep.categorical], hidden, outputs, dropout)


def standardize(numeric: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(x - mean) / std with missing values (NaN) at the mean, i.e. 0."""
    z = (numeric - mean) / std
    return torch.where(torch.isnan(z), torch.zeros_like(z), z)


class ServingModel(nn.Module):
    """Raw inputs in, predictions out: what is exported and served."""

    def __init__(self, net: TabularNet, prep: Preprocessing) -> None:
        super().__init__()
        self.net = net
        self.task = prep.task
        self.register_buffer("mean", torch.tensor([c.mean for c in prep.numeric], dtype=torch.float32))
        self.register_buffer("std", torch.tensor([c.std for c in prep.numeric], dtype=torch.float32))
        self.label_mean = float(prep.label_mean)
        self.label_std = float(prep.label_std)

    def forward(self, numeric: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        out = self.net(standardize(numeric, self.mean, self.std), categorical)
        if self.task == "binary":
            return torch.sigmoid(out)
        if self.task == "multiclass":
            return torch.softmax(out, dim=1)
        return out * self.label_std + self.label_mean


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

