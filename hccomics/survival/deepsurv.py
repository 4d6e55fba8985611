"""DeepSurv (Katzman et al. 2018) and a multimodal variant with one encoder per covariate block."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

from hccomics._early_stopping import EarlyStopping
from hccomics._options import check_option
from hccomics.errors import DataValidationError
from hccomics.survival.base import SurvivalModel
from hccomics.survival.losses import cox_loss

__all__ = ["DeepSurv", "MultimodalDeepSurv"]

logger = logging.getLogger(__name__)


def _mlp(in_dim: int, hidden: Sequence[int], dropout: float):
    import torch.nn as nn

    layers, d = [], in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.ReLU(), nn.Dropout(dropout)]
        d = h
    return nn.Sequential(*layers), d


class _Net:
    """Factory of the torch module: a single MLP, or per-block encoders joined by a head."""

    @staticmethod
    def build(n_features: int, hidden: Sequence[int], dropout: float, blocks: list[list[int]] | None, block_hidden: int):
        import torch
        import torch.nn as nn

        class Single(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.body, d = _mlp(n_features, hidden, dropout)
                self.out = nn.Linear(d, 1, bias=False)  # a Cox model has no intercept

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.out(self.body(x)).squeeze(-1)

        class Blocks(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.index = [torch.as_tensor(b, dtype=torch.long) for b in blocks]
                self.encoders = nn.ModuleList(_mlp(len(b), (block_hidden,), dropout)[0] for b in blocks)
                self.head, d = _mlp(block_hidden * len(blocks), hidden, dropout)
                self.out = nn.Linear(d, 1, bias=False)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                z = torch.cat([enc(x[:, idx.to(x.device)]) for enc, idx in zip(self.encoders, self.index)], dim=1)
                return self.out(self.head(z)).squeeze(-1)

        return Blocks() if blocks else Single()


class DeepSurv(SurvivalModel):
    """Cox partial-likelihood neural network with dropout, weight decay and early stopping.

    Covariates are standardised with the training mean and SD. An inner validation split
    (stratified by event) stops training when its loss has not improved for ``patience`` epochs,
    and the best weights are kept. The loss is the negative Cox partial log-likelihood with Efron
    or Breslow ties (``torchsurv``); a batch without events contributes zero, never NaN. Survival
    functions come from a Breslow baseline fitted on the training data.

    Parameters
    ----------
    hidden
        Units of the hidden layers.
    dropout, lr, weight_decay
        Regularisation and Adam's settings.
    epochs, batch_size, patience, val_fraction
        Training length, mini-batch size (``None``: full batch), early-stopping patience and the
        inner validation share.
    ties
        ``"efron"`` (default) or ``"breslow"``.
    seed
        Seeds weight initialisation, dropout, batching and the inner split (global RNG untouched).
    device
        ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"mps"``.
    """

    _param_names = ("hidden", "dropout", "lr", "weight_decay", "epochs", "batch_size", "patience",
                    "val_fraction", "ties", "seed", "device")

    def __init__(self, *, hidden: Sequence[int] = (32, 16), dropout: float = 0.1, lr: float = 1e-3,
                 weight_decay: float = 1e-4, epochs: int = 300, batch_size: int | None = None, patience: int = 30,
                 val_fraction: float = 0.2, ties: Literal["efron", "breslow"] = "efron", seed: int = 0,
                 device: str = "auto") -> None:
        self.hidden, self.dropout, self.lr, self.weight_decay = tuple(hidden), dropout, lr, weight_decay
        self.epochs, self.batch_size, self.patience, self.val_fraction = epochs, batch_size, patience, val_fraction
        self.ties, self.seed, self.device = ties, seed, device

    def _blocks(self) -> list[list[int]] | None:
        return None

    def fit(self, df: pd.DataFrame, *, duration_col: str, event_col: str, covariates: Sequence[str] | None = None) -> "DeepSurv":
        """Train on a table with a duration column, an event column and covariates (default: all others)."""
        import torch
        from sksurv.linear_model.coxph import BreslowEstimator

        from hccomics.settings import resolve_device

        check_option("ties", self.ties, ("efron", "breslow"))
        data = self._fit_data(df, duration_col, event_col, covariates)
        X = data.X.to_numpy(dtype=np.float32)
        self.mean_, sd = X.mean(axis=0), X.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        Xs = (X - self.mean_) / self.scale_
        device = resolve_device(self.device)
        rng = np.random.default_rng(self.seed)
        train_idx, val_idx = self._inner_split(data.events, rng)
        if not data.events[val_idx].any():
            logger.warning("too few events for an inner validation split; early stopping watches the training loss")
            val_idx = np.array([], dtype=int)
        with torch.random.fork_rng(devices=[] if device == "cpu" else None):
            torch.manual_seed(self.seed)
            net = _Net.build(X.shape[1], self.hidden, self.dropout, self._blocks(), getattr(self, "block_hidden", 8)).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            tx = torch.as_tensor(Xs, device=device)
            tt = torch.as_tensor(data.durations, dtype=torch.float32, device=device)
            te = torch.as_tensor(data.events.astype(bool), device=device)

            def loss_of(idx: np.ndarray) -> "torch.Tensor":
                i = torch.as_tensor(idx, device=device)
                return cox_loss(net(tx[i]), tt[i], te[i], ties=self.ties)

            stop, history = EarlyStopping(patience=self.patience), []
            bs = len(train_idx) if self.batch_size is None else int(self.batch_size)
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # torchsurv's notes on ties and empty batches
                for _epoch in range(self.epochs):
                    net.train()
                    order = rng.permutation(train_idx)
                    for start in range(0, len(order), bs):
                        opt.zero_grad()
                        loss = loss_of(order[start:start + bs])
                        loss.backward()
                        opt.step()
                    net.eval()
                    with torch.no_grad():
                        val = float(loss_of(val_idx if len(val_idx) else train_idx))
                        history.append(val)
                    if stop.step(val, net):
                        break
            stop.restore(net)
            net.eval()
            self.net_ = net.cpu()
        self.history_ = pd.Series(history, name="validation_loss")
        self.n_epochs_ = len(history)
        lp = self._linear_predictor(data.X)
        self.baseline_ = BreslowEstimator().fit(lp, data.events.astype(bool), data.durations)
        self.fitted_ = True
        return self

    def _inner_split(self, events: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(len(events))
        if self.val_fraction <= 0:
            return idx, np.array([], dtype=int)
        val = []
        for e in (0, 1):  # stratified by event
            members = idx[events == e]
            k = int(round(self.val_fraction * len(members)))
            if e == 1 and k == 0 and len(members) >= 2:
                k = 1  # a validation split without events has no partial likelihood to monitor
            val += list(rng.choice(members, size=k, replace=False)) if k else []
        val = np.sort(np.array(val, dtype=int))
        return np.setdiff1d(idx, val), val

    def _linear_predictor(self, X: pd.DataFrame) -> np.ndarray:
        import torch

        xs = (X.to_numpy(dtype=np.float32) - self.mean_) / self.scale_
        with torch.no_grad():
            return self.net_(torch.as_tensor(xs, dtype=torch.float32)).numpy().astype(float)

    def predict_risk(self, df: pd.DataFrame) -> np.ndarray:
        """The network's log-risk; higher means worse prognosis."""
        return self._linear_predictor(self._predict_X(df))

    def predict_survival_function(self, df: pd.DataFrame, times: Sequence[float] | None = None) -> pd.DataFrame:
        """Survival probabilities (times x rows) from the Breslow baseline of the training data."""
        fns = self.baseline_.get_survival_function(self.predict_risk(df))
        grid = np.asarray(times if times is not None else fns[0].x, dtype=float)
        lo, hi = fns[0].domain
        # S = 1 before the first training time; the last value is carried beyond the training follow-up
        probs = np.column_stack([f(np.clip(grid, lo, hi)) for f in fns])
        probs[grid < lo] = 1.0
        return pd.DataFrame(probs, index=grid, columns=df.index)

    @property
    def summary(self) -> pd.DataFrame:
        """Training record: epochs run, best validation loss, parameters."""
        self._check_fitted()
        return pd.DataFrame({"value": {"epochs_run": self.n_epochs_, "best_validation_loss": float(self.history_.min()),
                                       "n_covariates": len(self.columns_), **{k: str(v) for k, v in self.get_params().items()}}})


class MultimodalDeepSurv(DeepSurv):
    """DeepSurv with one encoder per covariate block (clinical, signature scores, image embeddings...).

    Parameters
    ----------
    blocks
        ``{block name: [covariate columns]}``; every covariate belongs to one block.
    block_hidden
        Output width of each block's encoder.
    **kwargs
        As :class:`DeepSurv`.
    """

    _param_names = ("blocks", "block_hidden", *DeepSurv._param_names)

    def __init__(self, *, blocks: Mapping[str, Sequence[str]], block_hidden: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        if not blocks:
            raise DataValidationError("blocks must name at least one block of covariates")
        self.blocks = {k: list(v) for k, v in blocks.items()}
        self.block_hidden = block_hidden

    def fit(self, df: pd.DataFrame, *, duration_col: str, event_col: str, covariates: Sequence[str] | None = None) -> "MultimodalDeepSurv":
        """Train; covariates default to the union of the blocks."""
        covariates = list(covariates) if covariates is not None else [c for cols in self.blocks.values() for c in cols]
        return super().fit(df, duration_col=duration_col, event_col=event_col, covariates=covariates)

    def _blocks(self) -> list[list[int]]:
        # encoded column positions per block (a categorical covariate expands to several columns)
        owner: dict[str, str] = {}
        for name, cols in self.blocks.items():
            for c in cols:
                if c in owner:
                    raise DataValidationError(f"covariate '{c}' is in blocks '{owner[c]}' and '{name}'; give it one block")
                owner[c] = name
        unassigned = sorted(set(self.covariates_) - set(owner))
        if unassigned:
            raise DataValidationError(f"covariates {unassigned} belong to no block; add them to one of {list(self.blocks)}")
        out = []
        for name in self.blocks:
            idx = [i for i, col in enumerate(self.columns_) if owner.get(self.sources_[col]) == name]
            if not idx:
                raise DataValidationError(f"block '{name}' has no covariate in the table (expected {self.blocks[name]})")
            out.append(idx)
        return out
