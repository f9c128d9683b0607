"""Models by name: a sequence trunk plus a stage-1 or stage-2 head.

Shape contract (N = batch, L = seq_len, G = n_genes, T = n_tasks)
----------------------------------------------------------------
Stage1Model.forward(x)                 x (N, 4, L) float one-hot             -> (N, T) logits
Stage2Model.forward(x, expr, mean)     x (N, 4, L), expr (N, G) float,
                                       mean (N,) or (N, 1) float iff with_mean -> (N,) logits
Stage2Model.forward(x, expr, mean, bin_index)
                                       x (n, 4, L) the distinct windows, bin_index (N,) int64 in
                                       [0, n): pair i's window is x[bin_index[i]]     -> (N,) logits

Both expose ``.trunk`` (a ``Trunk``) and ``.head``, and a ``.config`` dict of plain values such
that ``build_model(**model.config)`` rebuilds the same architecture.

``SplitHead(model)`` (chromtune.models.split) scores a stage-2 model's (bin, cell type) pairs with
the trunk once per bin and the head's first layer split into per-bin and per-cell-type parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from .heads import ComplexHead, MultiTaskHead, SimpleHead
from .split import SplitHead
from .trunks import ARCHITECTURES, Trunk, check_arch

__all__ = ["ARCHITECTURES", "HEADS", "SplitHead", "Stage1Model", "Stage2Model", "Trunk", "build_model",
           "count_parameters"]

HEADS: tuple[str, ...] = ("simple", "complex")


class Stage1Model(nn.Module):
    """Sequence-only multi-task model: trunk -> MultiTaskHead."""

    def __init__(self, arch: str, n_tasks: int, seq_len: int = 1000, width: float = 1.0,
                 hidden: int = 1000, dropout: float = 0.3):
        super().__init__()
        self.config = {"arch": arch, "stage": 1, "n_tasks": int(n_tasks), "seq_len": int(seq_len),
                       "width": float(width), "hidden": int(hidden), "dropout": float(dropout)}
        self.trunk = Trunk(arch, seq_len, width)
        self.head = MultiTaskHead(self.trunk.out_features, n_tasks, hidden, dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(x))


class Stage2Model(nn.Module):
    """Multi-modal model: trunk feature + TF expression (+ mean accessibility) -> one logit.

    With ``freeze_trunk`` the pretrained part (the trunk, and for the complex head also its
    embedded stage-1 head) gets ``requires_grad=False`` and stays in eval mode whatever
    ``train()`` is called with: BatchNorm statistics and dropout are frozen too.
    """

    def __init__(self, arch: str, n_genes: int, with_mean: bool = False, head: str = "simple",
                 n_tasks: int | None = None, seq_len: int = 1000, width: float = 1.0,
                 hidden: int = 1000, dropout: float = 0.3, freeze_trunk: bool = False):
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; valid names: {', '.join(HEADS)}")
        if head == "complex" and n_tasks is None:
            raise ValueError("the complex head needs n_tasks (the stage-1 model's task count)")
        self.config = {"arch": arch, "stage": 2, "n_genes": int(n_genes), "with_mean": bool(with_mean),
                       "head": head, "seq_len": int(seq_len), "width": float(width),
                       "hidden": int(hidden), "dropout": float(dropout), "freeze_trunk": False}
        self.trunk = Trunk(arch, seq_len, width)
        if head == "simple":
            self.head = SimpleHead(self.trunk.out_features, n_genes, with_mean, hidden, dropout)
        else:
            self.config["n_tasks"] = int(n_tasks)
            self.head = ComplexHead(self.trunk.out_features, n_genes, n_tasks, with_mean, hidden, dropout)
        if freeze_trunk:
            self.freeze_trunk()

    def _pretrained(self) -> list[nn.Module]:
        """The modules that come from the stage-1 model."""
        return [self.trunk, self.head.stage1] if isinstance(self.head, ComplexHead) else [self.trunk]

    @property
    def trunk_frozen(self) -> bool:
        """Whether ``freeze_trunk()`` has been applied."""
        return self.config["freeze_trunk"]

    def freeze_trunk(self) -> None:
        """Stop gradients into the pretrained part and keep it in eval mode from now on."""
        for module in self._pretrained():
            module.requires_grad_(False)
            module.eval()
        self.config["freeze_trunk"] = True

    def train(self, mode: bool = True) -> Stage2Model:
        super().train(mode)
        if self.trunk_frozen:
            for module in self._pretrained():
                module.eval()
        return self

    def load_trunk(self, source: nn.Module | Mapping[str, Any]) -> None:
        """Copy the trunk (and for the complex head the stage-1 head) from a stage-1 model.

        `source` is a stage-1 model or its checkpoint dict (``{"config", "state_dict", ...}``).
        The copy is exact, BatchNorm running statistics included. Raises ValueError unless the
        source is a stage-1 model with the same arch, width and seq_len (and, for the complex
        head, n_tasks and hidden).
        """
        config, state = _config_and_state(source)
        keys = ("arch", "width", "seq_len")
        if isinstance(self.head, ComplexHead):
            keys += ("n_tasks", "hidden")
        theirs = {k: config.get(k) for k in keys}
        mine = {k: self.config[k] for k in keys}
        if config.get("stage") != 1 or theirs != mine:
            raise ValueError(f"cannot load trunk: source is stage {config.get('stage')} {_describe(theirs)}, "
                             f"this model needs stage 1 {_describe(mine)}")
        targets = [(self.trunk, "trunk.")]
        if isinstance(self.head, ComplexHead):
            targets.append((self.head.stage1, "head."))
        for module, prefix in targets:
            part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            try:
                module.load_state_dict(part)
            except RuntimeError as err:
                raise ValueError(f"cannot load trunk: {str(err).splitlines()[0]}") from None

    def forward(self, x: Tensor, expr: Tensor, mean: Tensor | None = None, bin_index: Tensor | None = None) -> Tensor:
        """Logits of (window, expression, mean) pairs; with ``bin_index`` the trunk runs once per distinct
        window of ``x`` and pair i takes window ``bin_index[i]`` (training batches grouped by bin)."""
        if (mean is None) == self.config["with_mean"]:
            raise ValueError("this model was built with_mean=True: pass mean" if mean is None
                             else "this model was built with_mean=False: mean must be None")
        if mean is not None:
            mean = mean.reshape(-1, 1)
        feat = self.trunk(x)
        return self.head(feat if bin_index is None else feat[bin_index], expr, mean)


def _config_and_state(source: nn.Module | Mapping[str, Any]) -> tuple[dict, Mapping[str, Tensor]]:
    if isinstance(source, nn.Module) and isinstance(getattr(source, "config", None), dict):
        return source.config, source.state_dict()
    if isinstance(source, Mapping) and isinstance(source.get("config"), Mapping) and "state_dict" in source:
        return dict(source["config"]), source["state_dict"]
    raise ValueError("cannot load trunk: need a chromtune model or a checkpoint dict with "
                     "'config' and 'state_dict'")


def _describe(fields: dict) -> str:
    return "(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"


def build_model(arch: str, stage: int = 1, *, n_tasks: int | None = None, n_genes: int | None = None,
                with_mean: bool | None = None, head: str | None = None, seq_len: int = 1000,
                width: float = 1.0, hidden: int = 1000, dropout: float = 0.3,
                freeze_trunk: bool | None = None) -> Stage1Model | Stage2Model:
    """Build a model by architecture name and stage.

    Stage 1 needs `n_tasks`. Stage 2 needs `n_genes`; `with_mean` (default False), `head`
    ("simple", the default, or "complex") and `freeze_trunk` (default False) apply to stage 2
    only; `n_tasks` is needed by the complex head and ignored by the simple one.
    Raises ValueError for an unknown name or an inconsistent argument.
    """
    check_arch(arch)
    common = {"seq_len": seq_len, "width": width, "hidden": hidden, "dropout": dropout}
    if stage == 1:
        stage2_only = {"n_genes": n_genes, "with_mean": with_mean, "head": head, "freeze_trunk": freeze_trunk}
        given = [k for k, v in stage2_only.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply to stage 2 only")
        if n_tasks is None:
            raise ValueError("a stage-1 model needs n_tasks")
        return Stage1Model(arch, n_tasks, **common)
    if stage == 2:
        if n_genes is None:
            raise ValueError("a stage-2 model needs n_genes")
        head = head or "simple"
        return Stage2Model(arch, n_genes, bool(with_mean), head, n_tasks if head == "complex" else None,
                           freeze_trunk=bool(freeze_trunk), **common)
    raise ValueError(f"stage must be 1 or 2, got {stage!r}")


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (weights, biases, BatchNorm gamma/beta; not running statistics)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
