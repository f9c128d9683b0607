"""The MLflow model wrapper: a stage-2 model behind one flat float input, for pyfunc serving."""

from __future__ import annotations

import torch


class FlatInputModel(torch.nn.Module):
    """The stage-2 model behind one (N, 4*L + G [+ 1]) float input, for MLflow's pyfunc serving:
    the flattened one-hot window, then the G expression values, then the mean accessibility."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.seq_len, self.n_genes = model.config["seq_len"], model.config["n_genes"]

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        cut = 4 * self.seq_len
        x = inputs[:, :cut].reshape(-1, 4, self.seq_len)
        expr = inputs[:, cut:cut + self.n_genes]
        mean = inputs[:, cut + self.n_genes] if self.model.config["with_mean"] else None
        return torch.sigmoid(self.model(x, expr, mean))

    @staticmethod
    def example(model):
        width = 4 * model.config["seq_len"] + model.config["n_genes"] + int(model.config["with_mean"])
        return torch.zeros(2, width).numpy()
