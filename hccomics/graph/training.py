"""Fit / predict wrapper of the fusion networks: graph building per fold, masked losses, inner model selection."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from hccomics._early_stopping import EarlyStopping
from hccomics._options import check_option
from hccomics.errors import DataValidationError, NotFittedError
from hccomics.graph.inputs import FusionInputs

__all__ = ["ARCHITECTURES", "DegenerateFoldError", "FusionBatch", "FusionModel", "build_batch", "cpu_threads"]

logger = logging.getLogger(__name__)

ARCHITECTURES = ("gcn", "gcn_vcdn", "kronecker", "hetero")


class DegenerateFoldError(DataValidationError):
    """The training patients of a fold hold one class (or one patient of a class): nothing to learn from."""


# weight decay matters most: a weakly penalised first layer keeps random directions over every gene, which
# both overfits and spreads the attributions (on the demo, 1e-3 put 1 planted gene in the top 10, 3e-2 put 10)
DEFAULT_GRID = {a: {"weight_decay": (3e-2, 1e-1)} for a in ("gcn", "gcn_vcdn", "kronecker")}
# the heterogeneous model's messages pass through learned gene embeddings, which that much decay erases
DEFAULT_GRID["hetero"] = {"weight_decay": (1e-3, 1e-2)}


@dataclass
class FusionBatch:
    """Everything a network's forward takes, on every patient of the inputs (training and held-out)."""

    x_dict: dict
    edge_index_dict: dict
    edge_weight_dict: dict
    available_dict: dict
    patients: pd.Index
    train_mask: np.ndarray
    hetero: Any = None

    def to(self, device: str) -> FusionBatch:
        mv = lambda d: {k: v.to(device) for k, v in d.items()}
        return FusionBatch(mv(self.x_dict), mv(self.edge_index_dict), mv(self.edge_weight_dict), mv(self.available_dict),
                           self.patients, self.train_mask, self.hetero)

    def args(self) -> tuple:
        return self.x_dict, self.edge_index_dict, self.edge_weight_dict, self.available_dict


def build_batch(inputs: FusionInputs, *, architecture: str, train: pd.Index, modalities: Sequence[str],
                k: int = 10, metric: str = "cosine", mode: str = "transductive") -> FusionBatch:
    """Graphs and features of one fold: standardised on ``train``, edges by ``mode`` (see :func:`patient_graph`)."""
    import torch

    from hccomics.graph.builders import hetero_graph, patient_graph
    from hccomics.graph.models import similar

    patients = inputs.patients
    is_train = patients.isin(train)
    if architecture == "hetero":
        need = [m for m in ("clinical", "rna") if m not in modalities]
        if need:
            raise DataValidationError(f"the heterogeneous model needs the modalities {need}")
        h = hetero_graph({m: inputs.blocks[m] for m in modalities}, train=train, mode=mode,
                         feature_block="image" if "image" in modalities else None)
        avail = {m: torch.as_tensor(inputs.available[m].to_numpy()) for m in modalities}
        return FusionBatch(dict(h.x_dict), dict(h.edge_index_dict), dict(h.collect("edge_weight")), avail, patients,
                           is_train, h)
    x, ei, ew, av = {}, {}, {}, {}
    for m in modalities:
        g = patient_graph(inputs.blocks[m], train=train, k=k, metric=metric, mode=mode)
        x[m], ei[similar(m)], ew[similar(m)], av[m] = g.x, g.edge_index, g.edge_weight, g.has_modality
    return FusionBatch(x, ei, ew, av, patients, is_train)


class FusionModel:
    """A fusion network fitted on one training set, predicting every patient of the inputs.

    Graphs are rebuilt from the training patients at each fit (standardisation, and in ``inductive`` mode the
    edges); labels of patients outside ``train`` never enter a loss. Hyperparameters in ``grid`` are chosen on
    an inner stratified split of the training patients (lowest validation loss; the inner graph is standardised
    on the inner training patients, and in ``inductive`` mode the inner validation patients only receive edges);
    the final network is refitted on every training patient for the chosen number of epochs. Grid keys must
    be constructor parameters of the network or the optimiser (``k``, ``hidden``, ``dropout``, ``lr``,
    ``weight_decay``).

    Parameters
    ----------
    architecture
        ``"gcn"`` (:class:`MultiOmicsGCN`, concatenation head), ``"gcn_vcdn"`` (MOGONET's VCDN head, binary
        tasks), ``"kronecker"`` (:class:`GatedKroneckerFusion`), ``"hetero"`` (:class:`PatientGeneGNN`).
    modalities
        Modalities used (default: all of the inputs). One modality gives the single-modality baseline, which
        scores only the patients that have it.
    task
        ``"binary"`` (logistic loss on ``labels['y']``) or ``"cox"`` (partial likelihood on ``duration`` and
        ``event``; the output is a log-risk).
    mode
        ``"transductive"`` or ``"inductive"`` (see :func:`hccomics.graph.patient_graph`).
    k, metric
        Patient-similarity graphs: neighbours and distance.
    hidden, dropout, lr, weight_decay, epochs, patience, aux_weight
        Network and training settings; ``aux_weight`` weighs the per-modality losses.
    grid
        ``{parameter: values}`` searched inside the training patients (default: a small grid per architecture;
        ``{}`` turns the search off).
    val_fraction
        Share of the training patients held out by the inner split.
    seed, device
        Seeds weights, dropout and the inner split; ``"auto"`` picks CUDA when present.
    num_threads
        Torch CPU threads while fitting and predicting (restored after); ``None`` keeps torch's setting. One is
        fastest for cohort-sized graphs.

    Examples
    --------
    >>> import hccomics as hc, tempfile
    >>> from hccomics import graph
    >>> man = hc.datasets.make_demo_cohort(tempfile.mkdtemp(), profile="smoke", images=False)
    >>> mdata = hc.io.load_cohort(man)
    >>> fi = graph.fusion_inputs(mdata.obs, rna=mdata["rna"], n_genes=50)
    >>> y = graph.task_labels(mdata.obs, "mvi")
    >>> m = graph.FusionModel(epochs=20, grid={}).fit(fi, y, train=y.index[:30])
    >>> m.predict().shape == (len(fi.patients),)
    True
    """

    _param_names = ("architecture", "modalities", "task", "mode", "k", "metric", "conv", "direct", "hidden", "dropout", "lr",
                    "weight_decay", "epochs", "patience", "aux_weight", "grid", "val_fraction", "seed", "device", "num_threads")

    def __init__(self, *, architecture: Literal["gcn", "gcn_vcdn", "kronecker", "hetero"] = "gcn",
                 modalities: Sequence[str] | None = None, task: Literal["binary", "cox"] = "binary",
                 mode: Literal["transductive", "inductive"] = "transductive", k: int = 10, metric: str = "cosine",
                 conv: Literal["gcn", "sage"] = "gcn", direct: Sequence[str] = (), hidden: int = 32, dropout: float = 0.3, lr: float = 5e-3, weight_decay: float = 3e-2,
                 epochs: int = 300, patience: int = 30, aux_weight: float = 0.5, grid: Mapping | None = None,
                 val_fraction: float = 0.25, seed: int = 0, device: str = "auto", num_threads: int | None = 1) -> None:
        self.architecture, self.modalities, self.task, self.mode = architecture, modalities, task, mode
        self.k, self.metric, self.conv, self.hidden, self.dropout, self.lr = k, metric, conv, hidden, dropout, lr
        self.direct = tuple(direct)
        self.weight_decay, self.epochs, self.patience, self.aux_weight = weight_decay, epochs, patience, aux_weight
        self.grid, self.val_fraction, self.seed, self.device = grid, val_fraction, seed, device
        self.num_threads = num_threads

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in self._param_names}

    def clone(self, **changes: Any) -> FusionModel:
        """An unfitted copy with the same parameters (``changes`` override some)."""
        return type(self)(**{**self.get_params(), **changes})

    def __repr__(self) -> str:
        return f"FusionModel({', '.join(f'{k}={v!r}' for k, v in self.get_params().items())})"

    # -- checks -------------------------------------------------------------------------------------------------
    def _check(self, inputs: FusionInputs, labels: pd.DataFrame) -> list[str]:
        check_option("architecture", self.architecture, ARCHITECTURES)
        check_option("task", self.task, ("binary", "cox"))
        check_option("mode", self.mode, ("transductive", "inductive"))
        if self.architecture == "gcn_vcdn" and self.task != "binary":
            raise DataValidationError("the VCDN head fuses class probabilities: use it for binary tasks only")
        mods = list(self.modalities) if self.modalities is not None else inputs.modalities
        unknown = [m for m in mods if m not in inputs.blocks]
        if unknown:
            raise DataValidationError(f"modalities {unknown} are not in the inputs (have {inputs.modalities})")
        cols = ("y",) if self.task == "binary" else ("duration", "event")
        if any(c not in labels.columns for c in cols):
            raise DataValidationError(f"task '{self.task}' needs label columns {list(cols)} (have {list(labels.columns)}); "
                                      "use hccomics.graph.task_labels")
        return mods

    # -- training -----------------------------------------------------------------------------------------------
    def _net(self, batch: FusionBatch, mods: list[str], hidden: int, dropout: float):
        from hccomics.graph.models import GatedKroneckerFusion, MultiOmicsGCN, PatientGeneGNN

        dims = {t: int(v.shape[1]) for t, v in batch.x_dict.items()}
        if self.architecture == "hetero":
            return PatientGeneGNN(batch.hetero.metadata(), dims, hidden=hidden, dropout=dropout)
        if self.architecture == "kronecker":
            return GatedKroneckerFusion(dims, hidden=max(2, hidden // 4), dropout=dropout)
        return MultiOmicsGCN(dims, hidden=hidden, dropout=dropout, conv=self.conv, direct=self.direct,
                             fusion="vcdn" if self.architecture == "gcn_vcdn" else "concat")

    def _loss(self, out, idx, target, avail, modality_outputs=None):
        import torch

        from hccomics.survival.losses import cox_loss

        def one(o, i):
            if len(i) == 0:
                return (o * 0.0).sum()
            if self.task == "binary":
                return torch.nn.functional.binary_cross_entropy_with_logits(o[i], target["y"][i])
            return cox_loss(o[i], target["duration"][i], target["event"][i])

        loss = one(out, idx)
        if modality_outputs and self.aux_weight > 0:
            aux = [one(o, idx[avail[m][idx]]) for m, o in modality_outputs.items()]
            loss = loss + self.aux_weight * sum(aux) / len(aux)
        return loss

    def _train(self, batch: FusionBatch, target: dict, train_idx, val_idx, mods, params: dict, epochs: int,
               device: str):
        import torch

        torch.manual_seed(self.seed)
        net = self._net(batch, mods, int(params.get("hidden", self.hidden)), float(params.get("dropout", self.dropout)))
        net = net.to(device)
        opt = torch.optim.Adam(net.parameters(), lr=float(params.get("lr", self.lr)),
                               weight_decay=float(params.get("weight_decay", self.weight_decay)))
        tr = torch.as_tensor(train_idx, device=device)
        va = torch.as_tensor(val_idx, device=device)
        stop, history = EarlyStopping(patience=self.patience, min_delta=1e-5), []
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else nullcontext()
        for epoch in range(epochs):
            net.train()
            opt.zero_grad()
            with autocast:
                out = net(*batch.args())
                loss = self._loss(out.float(), tr, target, batch.available_dict,
                                  {m: o.float() for m, o in net.modality_outputs.items()})
            if not bool(torch.isfinite(loss)):  # diverged: keep the best state seen so far
                logger.warning("%s: the training loss is not finite at epoch %d; training stops there",
                               self.architecture, epoch + 1)
                break
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            if len(val_idx):
                net.eval()
                with torch.no_grad():
                    val = float(self._loss(net(*batch.args()).float(), va, target, batch.available_dict))
                history.append(val)
                if stop.step(val, net):
                    break
        stop.restore(net)
        net.eval()
        return net, stop.best, max(stop.best_epoch, 1), history

    def _inner_split(self, labels: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.Index, pd.Index]:
        strat = labels["y"] if self.task == "binary" else labels["event"]
        val = []
        for _, members in strat.groupby(strat):
            n = round(self.val_fraction * len(members))
            if n and len(members) > 1:
                val += list(rng.choice(members.index.to_numpy(), size=min(n, len(members) - 1), replace=False))
        val = pd.Index(val)
        return labels.index.difference(val), val

    def _targets(self, labels: pd.DataFrame, patients: pd.Index, device: str) -> dict:
        import torch

        lab = labels.reindex(patients)
        if self.task == "binary":
            return {"y": torch.as_tensor(lab["y"].fillna(0).to_numpy(dtype=np.float32), device=device)}
        return {"duration": torch.as_tensor(lab["duration"].fillna(0).to_numpy(dtype=np.float32), device=device),
                "event": torch.as_tensor(lab["event"].fillna(0).to_numpy(dtype=bool), device=device)}

    def fit(self, inputs: FusionInputs, labels: pd.DataFrame, *, train: Sequence[str] | pd.Index) -> FusionModel:
        """Fit on the labelled patients of ``train``; every patient of ``inputs`` is a node.

        Parameters
        ----------
        inputs
            :func:`~hccomics.graph.fusion_inputs` output.
        labels
            :func:`~hccomics.graph.task_labels` output (``y``, or ``duration`` and ``event``).
        train
            Training patients. Only their labels are read.
        """
        import torch

        from hccomics.settings import resolve_device

        mods = self._check(inputs, labels)
        train = pd.Index([str(p) for p in train])
        if not train.isin(inputs.patients).all():
            raise DataValidationError(f"{int((~train.isin(inputs.patients)).sum())} training patients are not in the inputs")
        # labels of patients outside train are dropped here, before anything can read them
        lab = labels.loc[labels.index.intersection(train)]
        if len(mods) == 1:  # a single-modality model learns from (and scores) the patients with that modality
            lab = lab.loc[inputs.available.loc[lab.index, mods[0]].to_numpy(dtype=bool)]
        strat = lab["y"] if self.task == "binary" else lab["event"]
        if strat.nunique() < 2 or strat.value_counts().min() < 2:
            raise DegenerateFoldError(f"the training patients hold a single class of {'y' if self.task == 'binary' else 'event'}"
                                      f" or a class of one patient ({len(lab)} patients, counts {strat.value_counts().to_dict()})")
        device = resolve_device(self.device)
        rng = np.random.default_rng(self.seed)
        grid = DEFAULT_GRID[self.architecture] if self.grid is None else dict(self.grid)
        unknown = [g for g in grid if g not in ("k", "hidden", "dropout", "lr", "weight_decay")]
        if unknown:
            raise DataValidationError(f"grid keys {unknown} are not searchable; use k, hidden, dropout, lr or weight_decay")
        configs = [dict(zip(grid, v)) for v in itertools.product(*grid.values())] or [{}]
        pos = {p: i for i, p in enumerate(inputs.patients)}
        with torch.random.fork_rng(devices=[] if device == "cpu" else None), cpu_threads(self.num_threads):
            inner_train, inner_val = self._inner_split(lab, rng)
            target = self._targets(lab, inputs.patients, device)
            results = []
            for cfg in configs:
                # the inner graph is built from the inner training patients, as the outer one is from train
                batch = build_batch(inputs, architecture=self.architecture, train=train.difference(inner_val),
                                    modalities=mods, k=int(cfg.get("k", self.k)), metric=self.metric,
                                    mode=self.mode).to(device)
                _, val, epoch, _ = self._train(batch, target, [pos[p] for p in inner_train],
                                               [pos[p] for p in inner_val], mods, cfg, self.epochs, device)
                results.append((val, epoch, cfg))
            val, epoch, cfg = min(results, key=lambda r: r[0])
            batch = build_batch(inputs, architecture=self.architecture, train=train, modalities=mods,
                                k=int(cfg.get("k", self.k)), metric=self.metric, mode=self.mode).to(device)
            final_epochs = min(self.epochs, max(epoch, 10))
            net, _, _, _ = self._train(batch, target, [pos[p] for p in lab.index], [], mods, cfg, final_epochs, device)
        self.net_, self.batch_, self.modalities_ = net, batch, mods
        self.chosen_ = {**cfg, "epochs": final_epochs, "inner_val_loss": float(val)}
        self.search_ = pd.DataFrame([{**c, "epochs": e, "val_loss": v} for v, e, c in results])
        self.train_patients_ = pd.Index(lab.index)
        self.device_ = device
        self.fitted_ = True
        return self

    # -- prediction ---------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not getattr(self, "fitted_", False):
            raise NotFittedError("this FusionModel is not fitted yet; call fit(inputs, labels, train=...) first")

    def predict(self, patients: Sequence[str] | None = None) -> pd.Series:
        """Fused output per patient (logit, or log-risk for ``task="cox"``); NaN where a single-modality model
        has no data."""
        import torch

        self._check_fitted()
        with torch.no_grad(), cpu_threads(self.num_threads):
            out = self.net_(*self.batch_.args()).float().cpu().numpy().astype(float)
        s = pd.Series(out, index=self.batch_.patients, name="output")
        if len(self.modalities_) == 1 and self.architecture != "hetero":
            s[~self.batch_.available_dict[self.modalities_[0]].cpu().numpy()] = np.nan
        if patients is None:
            return s
        wanted = pd.Index([str(p) for p in patients])
        unknown = wanted.difference(s.index)
        if len(unknown):
            raise DataValidationError(f"{len(unknown)} patients are not nodes of the model's graph (e.g. "
                                      f"{list(unknown[:3])}); every patient to score must be in the inputs at fit time")
        return s[wanted]

    def predict_proba(self, patients: Sequence[str] | None = None) -> pd.Series:
        """Probability of the positive class (binary task)."""
        if self.task != "binary":
            raise DataValidationError("predict_proba is for binary tasks; a Cox model predicts a log-risk (predict)")
        return 1.0 / (1.0 + np.exp(-self.predict(patients)))

    def embed(self) -> pd.DataFrame:
        """Fused patient embedding (per-modality GCN embeddings side by side) for the embedding figure."""
        import torch

        self._check_fitted()
        if not hasattr(self.net_, "embed"):
            raise DataValidationError(f"the {self.architecture} network has no per-modality embedding")
        with torch.no_grad(), cpu_threads(self.num_threads):
            emb = self.net_.embed(self.batch_.x_dict, self.batch_.edge_index_dict, self.batch_.edge_weight_dict)
        cols = {m: e.cpu().numpy() * self.batch_.available_dict[m].cpu().numpy()[:, None] for m, e in emb.items()}
        return pd.DataFrame(np.hstack(list(cols.values())), index=self.batch_.patients,
                            columns=[f"{m}_{i}" for m, e in cols.items() for i in range(e.shape[1])])


class cpu_threads:
    """Limit torch's intra-op CPU threads for a block, then restore them.

    Graphs of a few hundred patients are far too small to gain from several threads; on a busy 2-core machine
    two threads made one forward/backward pass 300-500x slower (0.5 s against 1 ms) by spinning on each other.
    """

    def __init__(self, n: int | None) -> None:
        self.n = n

    def __enter__(self) -> None:
        import torch

        self.before = torch.get_num_threads()
        if self.n is not None:
            torch.set_num_threads(max(1, min(self.n, self.before)))

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.before)
