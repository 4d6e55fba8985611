"""Explanations of the fusion networks (PyG ``Explainer`` with Captum attributions), rolled up to genes,
pathways and image-feature groups."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager, nullcontext
from functools import partial
from typing import Literal

import numpy as np
import pandas as pd

from hccomics._options import check_option
from hccomics.errors import DataValidationError
from hccomics.graph.inputs import FusionInputs
from hccomics.graph.training import FusionModel, cpu_threads

__all__ = ["METHODS", "explain", "gene_importance", "group_importance", "pathway_importance"]

METHODS = ("IntegratedGradients", "Saliency", "InputXGradient")


def _mean_output(net, index):
    import torch

    class MeanOutput(torch.nn.Module):
        """The mean output over the explained patients: one graph-level value to attribute."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x_dict, edge_index_dict, edge_weight_dict=None, available_dict=None):
            return self.net(x_dict, edge_index_dict, edge_weight_dict, available_dict)[index].mean().view(1)

    return MeanOutput()


@contextmanager
def _raw_hetero_edge_masks():
    """PyG's heterogeneous Captum wrapper sets edge masks through a sigmoid (PyG 2.8: ``set_hetero_masks`` with
    its default ``apply_sigmoid=True``), so integrated gradients would run from sigmoid(0) = 0.5 to 0.73 instead
    of from "edge off" to "edge on"; the homogeneous wrapper passes ``apply_sigmoid=False``. Do the same here."""
    from torch_geometric.explain.algorithm import captum as pyg_captum

    original = pyg_captum.set_hetero_masks
    pyg_captum.set_hetero_masks = partial(original, apply_sigmoid=False)
    try:
        yield
    finally:
        pyg_captum.set_hetero_masks = original


def explain(model: FusionModel, inputs: FusionInputs, *, patients: Sequence[str] | None = None,
            method: Literal["IntegratedGradients", "Saliency", "InputXGradient"] = "IntegratedGradients",
            n_steps: int = 32) -> dict[str, pd.DataFrame]:
    """Attribute a fitted fusion model's output to every input feature, per modality.

    PyG's :class:`~torch_geometric.explain.Explainer` with a :class:`~torch_geometric.explain.algorithm.CaptumExplainer`
    attributes the mean output over ``patients`` (default: every patient) to the node features of every node
    type (``node_mask_type="attributes"``). A feature's importance is the sum over nodes of its absolute
    attribution (the target is already a mean over patients): through the graph, a patient's output also
    depends on its neighbours' features, so every node counts.

    For the patient-similarity and Kronecker models the node types are the modalities, so the importances are
    per gene, per image feature and per clinical covariate. For the heterogeneous model the patients' clinical
    features are attributed as node features, and each gene (image feature) gets the summed absolute
    attribution of its edges to and from patients, which carry the expression (feature) values: a gene node is
    shared by every patient, and attributing the mean output to it would let patients cancel.

    Returns
    -------
    dict
        ``modality -> DataFrame`` indexed by feature, with ``importance`` and the feature's ``group`` (and
        ``wp4172`` for genes), sorted by importance.

    Examples
    --------
    >>> import hccomics as hc, tempfile
    >>> from hccomics import graph
    >>> mdata = hc.io.load_cohort(hc.datasets.make_demo_cohort(tempfile.mkdtemp(), profile="smoke", images=False))
    >>> fi = graph.fusion_inputs(mdata.obs, rna=mdata["rna"], n_genes=30)
    >>> y = graph.task_labels(mdata.obs, "mvi")
    >>> m = graph.FusionModel(epochs=10, grid={}).fit(fi, y, train=y.index)
    >>> imp = graph.explain(m, fi, n_steps=4)
    >>> sorted(imp), imp["rna"].columns.tolist()[:2]
    (['clinical', 'rna'], ['importance', 'group'])
    """
    import torch
    from torch_geometric.explain import Explainer
    from torch_geometric.explain.algorithm import CaptumExplainer

    model._check_fitted()
    check_option("method", method, METHODS)
    batch = model.batch_
    idx = np.arange(len(batch.patients)) if patients is None else batch.patients.get_indexer(pd.Index(map(str, patients)))
    if (idx < 0).any():
        raise DataValidationError(f"{int((idx < 0).sum())} patients to explain are not in the model's graph")
    net = model.net_.cpu().eval()  # attributions on the CPU; the model goes back to its device at the end
    cpu = batch.to("cpu")

    def attribute(node_mask_type, edge_mask_type):
        explainer = Explainer(_mean_output(net, torch.as_tensor(idx)),
                              algorithm=CaptumExplainer(method, **({"n_steps": n_steps} if method == "IntegratedGradients" else {})),
                              explanation_type="model", node_mask_type=node_mask_type, edge_mask_type=edge_mask_type,
                              model_config={"mode": "regression", "task_level": "graph", "return_type": "raw"})
        with cpu_threads(model.num_threads), (_raw_hetero_edge_masks() if edge_mask_type else nullcontext()):
            return explainer({k: v.float() for k, v in cpu.x_dict.items()}, cpu.edge_index_dict,
                             edge_weight_dict=cpu.edge_weight_dict, available_dict=cpu.available_dict)

    out: dict[str, pd.DataFrame] = {}
    try:
        expl = attribute("attributes", None)
        if model.architecture != "hetero":
            for m in model.modalities_:
                mask = expl[m].node_mask.detach().abs().numpy()
                out[m] = _table(mask.sum(axis=0), inputs.blocks[m].columns, inputs.features[m])
            return out
        out["clinical"] = _table(expl["patient"].node_mask.detach().abs().numpy().sum(axis=0),
                                 inputs.blocks["clinical"].columns, inputs.features["clinical"])
        # gene and image-feature nodes are shared by every patient, so attributing the mean output to their
        # node features lets patients' contributions cancel; their values sit on the edges instead, which are
        # attributed one by one (edge masks) and summed in absolute value per gene / feature
        edges = attribute(None, "object")
        for kind, mod, rel, back in (("gene", "rna", "expressed_in", "expresses"),
                                     ("image_feature", "image", "measured_in", "measures")):
            if kind not in batch.hetero.node_types:
                continue
            total = np.zeros(batch.hetero[kind].num_nodes)
            for et, end in (((kind, rel, "patient"), 0), (("patient", back, kind), 1)):
                mask = edges[et].edge_mask.detach().abs().numpy()
                np.add.at(total, cpu.edge_index_dict[et][end].numpy(), mask)
            out[mod] = _table(total, batch.hetero[kind].names, inputs.features[mod])
        return out
    finally:
        model.net_.to(model.device_)


def _table(values: np.ndarray, names, info: pd.DataFrame) -> pd.DataFrame:
    t = pd.DataFrame({"importance": values.astype(float)}, index=pd.Index(list(names), name="feature"))
    t = t.join(info.reindex(t.index))
    return t.sort_values("importance", ascending=False)


def gene_importance(importance: dict[str, pd.DataFrame], *, top: int | None = None) -> pd.DataFrame:
    """Genes ranked by importance (the RNA table of :func:`explain`, genes only), with their rank."""
    if "rna" not in importance:
        raise DataValidationError("the explanation has no RNA features")
    t = importance["rna"]
    t = t[t["group"] == "gene"].copy() if "group" in t else t.copy()
    t["rank"] = np.arange(1, len(t) + 1)
    return t.head(top) if top else t


def pathway_importance(importance: dict[str, pd.DataFrame], *, collection: str = "wikipathways", min_genes: int = 5,
                       marked: str = "WP4172") -> pd.DataFrame:
    """Mean gene importance per pathway (pathways with at least ``min_genes`` of the model's genes), ranked.

    The mean, not the sum, so that large pathways do not win by size; ``marked`` flags the PI3K-Akt pathway.
    """
    from hccomics.datasets.genesets import gene_sets

    genes = gene_importance(importance)["importance"]
    rows = []
    for name, s in gene_sets(collection).items():
        hit = genes.index.intersection(list(s.genes))
        if len(hit) >= min_genes:
            rows.append({"pathway": name, "description": s.description, "genes": len(hit),
                         "importance": float(genes[hit].mean()), "marked": name == marked})
    if not rows:
        raise DataValidationError(f"no {collection} pathway has {min_genes} of the model's {len(genes)} genes; "
                                  "lower min_genes or use more genes")
    t = pd.DataFrame(rows).sort_values("importance", ascending=False).set_index("pathway")
    t["rank"] = np.arange(1, len(t) + 1)
    return t


def group_importance(importance: dict[str, pd.DataFrame], *, modality: str = "image", by: str = "group") -> pd.DataFrame:
    """Mean feature importance per group of a modality's features (image: ``group`` = tumour, each ring width,
    liver, cnn; or ``phase``), ranked; the mean keeps groups of different sizes comparable."""
    if modality not in importance:
        raise DataValidationError(f"the explanation has no '{modality}' features (has {list(importance)})")
    t = importance[modality]
    if by not in t:
        raise DataValidationError(f"the {modality} features have no '{by}' column (have {list(t.columns)})")
    g = t.groupby(by)["importance"].agg(["mean", "size"]).rename(columns={"mean": "importance", "size": "features"})
    g = g.sort_values("importance", ascending=False)
    g["rank"] = np.arange(1, len(g) + 1)
    return g
