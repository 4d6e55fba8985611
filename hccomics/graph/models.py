"""GNN fusion networks (PyTorch Geometric layers).

Every network takes ``forward(x_dict, edge_index_dict, edge_weight_dict=None, available_dict=None)`` and returns
one output per patient (a logit, or a log-risk for the Cox head), so that PyG's ``Explainer`` can attribute it to
the input features of every node type. Per-modality outputs of the last call are kept in ``modality_outputs``
for the auxiliary losses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["GatedKroneckerFusion", "MultiOmicsGCN", "PatientGeneGNN", "similar"]


def similar(modality: str) -> tuple[str, str, str]:
    """Edge type of a modality's patient-similarity graph in a fusion batch."""
    return (modality, "similar", modality)


def _mlp(d_in: int, d_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Dropout(dropout))


class MultiOmicsGCN(nn.Module):
    """MOGONET-style fusion: one two-layer GCN per modality on its patient-similarity graph, and a fusion head.

    Each modality's GCN gives an embedding and its own output (trained with an auxiliary loss, as MOGONET
    trains each omics classifier). ``fusion="concat"`` joins the embeddings (zeroed where the patient lacks the
    modality) and the availability flags in a linear head; it serves the binary and the Cox heads.
    ``fusion="vcdn"`` is MOGONET's View Correlation Discovery Network: the outer product of the per-modality
    class probabilities, flattened, into a linear layer (binary tasks only; a missing modality enters as 0.5).
    Modalities in ``direct`` (low-dimensional covariates such as the clinical block) also enter the concatenation
    head as they are, a linear "wide" path beside the graph embeddings.

    Parameters
    ----------
    in_dims
        ``modality -> number of input features``.
    hidden
        GCN width.
    dropout
        Dropout after each GCN layer.
    fusion
        ``"concat"`` or ``"vcdn"``.

    Examples
    --------
    >>> net = MultiOmicsGCN({"rna": 5, "image": 3}, hidden=8)
    >>> x = {"rna": torch.randn(4, 5), "image": torch.randn(4, 3)}
    >>> ei = {similar("rna"): torch.tensor([[0, 1], [1, 0]]), similar("image"): torch.tensor([[2], [3]])}
    >>> net(x, ei).shape
    torch.Size([4])
    """

    def __init__(self, in_dims: Mapping[str, int], *, hidden: int = 32, dropout: float = 0.3,
                 fusion: str = "concat", conv: str = "gcn", direct: Sequence[str] = ()) -> None:
        from torch_geometric.nn import GCNConv, SAGEConv

        super().__init__()
        from hccomics._options import check_option

        check_option("fusion", fusion, ("concat", "vcdn"))
        check_option("conv", conv, ("gcn", "sage"))
        self.modalities = list(in_dims)
        self.fusion, self.dropout, self.conv = fusion, dropout, conv
        layer = (lambda a, b: GCNConv(a, b)) if conv == "gcn" else (lambda a, b: SAGEConv(a, b, aggr="mean"))
        self.conv1 = nn.ModuleDict({m: layer(d, hidden) for m, d in in_dims.items()})
        self.conv2 = nn.ModuleDict({m: layer(hidden, hidden) for m in in_dims})
        self.heads = nn.ModuleDict({m: nn.Linear(hidden, 1) for m in in_dims})
        k = len(self.modalities)
        self.direct = [m for m in direct if m in in_dims]
        n_direct = sum(in_dims[m] for m in self.direct)
        self.fuse = nn.Linear(hidden * k + k + n_direct, 1) if fusion == "concat" else nn.Linear(2 ** k, 1)
        self.modality_outputs: dict[str, Tensor] = {}

    def embed(self, x_dict: Mapping[str, Tensor], edge_index_dict: Mapping, edge_weight_dict: Mapping | None = None
              ) -> dict[str, Tensor]:
        """Per-modality patient embeddings (after the second GCN layer)."""
        out = {}
        for m in self.modalities:
            ei = edge_index_dict[similar(m)]
            w = None if edge_weight_dict is None else edge_weight_dict.get(similar(m))
            args = (ei, w) if self.conv == "gcn" else (ei,)  # SAGEConv: unweighted neighbour mean beside the node
            h = nn.functional.dropout(torch.relu(self.conv1[m](x_dict[m], *args)), self.dropout, self.training)
            out[m] = nn.functional.dropout(torch.relu(self.conv2[m](h, *args)), self.dropout, self.training)
        return out

    def forward(self, x_dict: Mapping[str, Tensor], edge_index_dict: Mapping, edge_weight_dict: Mapping | None = None,
                available_dict: Mapping[str, Tensor] | None = None) -> Tensor:
        emb = self.embed(x_dict, edge_index_dict, edge_weight_dict)
        n = next(iter(emb.values())).shape[0]
        avail = {m: (available_dict[m].float() if available_dict is not None else torch.ones(n, device=emb[m].device))
                 for m in self.modalities}
        self.modality_outputs = {m: self.heads[m](emb[m]).squeeze(-1) for m in self.modalities}
        if self.fusion == "concat":
            z = torch.cat([emb[m] * avail[m][:, None] for m in self.modalities]
                          + [torch.stack([avail[m] for m in self.modalities], dim=1)]
                          + [x_dict[m] for m in self.direct], dim=1)
            return self.fuse(z).squeeze(-1)
        # VCDN: outer product of [1 - p, p] over modalities; an absent modality contributes [0.5, 0.5]
        probs = []
        for m in self.modalities:
            p = torch.sigmoid(self.modality_outputs[m]) * avail[m] + 0.5 * (1 - avail[m])
            probs.append(torch.stack([1 - p, p], dim=1))
        t = probs[0]
        for p in probs[1:]:
            t = (t[:, :, None] * p[:, None, :]).flatten(1)
        return self.fuse(t).squeeze(-1)


class GatedKroneckerFusion(nn.Module):
    """Pathomic-Fusion-style gated Kronecker fusion of per-modality embeddings (no graph).

    Each modality is encoded by a linear layer with tanh to ``hidden`` units; a sigmoid gate computed from all embeddings
    scales each one (Pathomic Fusion gates each modality by attention on the others); a constant 1 is appended
    to every gated vector and their Kronecker (outer) product, flattened, keeps the unimodal terms beside every
    bi- and tri-modal interaction; an MLP maps it to the output. A missing modality's embedding is zero, so only
    the terms of the other modalities remain.

    Examples
    --------
    >>> net = GatedKroneckerFusion({"rna": 5, "image": 3}, hidden=4)
    >>> net({"rna": torch.randn(6, 5), "image": torch.randn(6, 3)}, {}).shape
    torch.Size([6])
    """

    def __init__(self, in_dims: Mapping[str, int], *, hidden: int = 8, dropout: float = 0.3, head: int = 32) -> None:
        super().__init__()
        self.modalities = list(in_dims)
        # tanh-bounded embeddings: the product of two or three of them stays in [-1, 1], which keeps the Cox head
        # from diverging on an outlying patient (ReLU embeddings multiplied three ways did)
        self.encoders = nn.ModuleDict({m: nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Dropout(dropout))
                                       for m, d in in_dims.items()})
        total = hidden * len(self.modalities)
        self.gates = nn.ModuleDict({m: nn.Linear(total, hidden) for m in self.modalities})
        self.heads = nn.ModuleDict({m: nn.Linear(hidden, 1) for m in self.modalities})
        self.out = nn.Sequential(nn.Dropout(dropout), _mlp((hidden + 1) ** len(self.modalities), head, dropout),
                                 nn.Linear(head, 1))
        self.modality_outputs: dict[str, Tensor] = {}

    def forward(self, x_dict: Mapping[str, Tensor], edge_index_dict: Mapping | None = None,
                edge_weight_dict: Mapping | None = None, available_dict: Mapping[str, Tensor] | None = None) -> Tensor:
        h = {m: self.encoders[m](x_dict[m]) for m in self.modalities}
        if available_dict is not None:
            h = {m: v * available_dict[m].float()[:, None] for m, v in h.items()}
        joint = torch.cat([h[m] for m in self.modalities], dim=1)
        gated = {m: torch.sigmoid(self.gates[m](joint)) * h[m] for m in self.modalities}
        self.modality_outputs = {m: self.heads[m](gated[m]).squeeze(-1) for m in self.modalities}
        one = torch.ones(joint.shape[0], 1, device=joint.device, dtype=joint.dtype)
        t = torch.cat([gated[self.modalities[0]], one], dim=1)
        for m in self.modalities[1:]:
            t = (t[:, :, None] * torch.cat([gated[m], one], dim=1)[:, None, :]).flatten(1)
        return self.out(t).squeeze(-1)


class PatientGeneGNN(nn.Module):
    """Heterogeneous GNN over patients, genes and image features (two ``HeteroConv`` layers of ``GraphConv``).

    Gene and image-feature nodes start from learned embeddings of their one-hot identities; patients start from
    their clinical features. A patient receives the mean of its genes' (and image features') embeddings weighted
    by its standardised values on the edges; genes exchange messages along pathway co-membership and collect the
    patients that express them. The output head reads the patient nodes.

    Examples
    --------
    >>> from hccomics.graph.builders import hetero_graph
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0); ids = [f"p{i}" for i in range(5)]
    >>> h = hetero_graph({"clinical": pd.DataFrame(rng.normal(size=(5, 2)), index=ids),
    ...                   "rna": pd.DataFrame(rng.normal(size=(5, 3)), index=ids, columns=["AKT1", "PIK3CA", "X"])},
    ...                  feature_block=None)
    >>> net = PatientGeneGNN(h.metadata(), {t: h[t].x.shape[1] for t in h.node_types}, hidden=8)
    >>> net(h.x_dict, h.edge_index_dict, h.collect("edge_weight")).shape
    torch.Size([5])
    """

    def __init__(self, metadata: tuple[Sequence[str], Sequence[tuple[str, str, str]]], in_dims: Mapping[str, int], *,
                 hidden: int = 32, dropout: float = 0.3) -> None:
        from torch_geometric.nn import GraphConv, HeteroConv

        super().__init__()
        node_types, edge_types = metadata
        self.dropout = dropout
        self.lin = nn.ModuleDict({t: nn.Linear(in_dims[t], hidden) for t in node_types})
        self.convs = nn.ModuleList(
            HeteroConv({et: GraphConv(hidden, hidden, aggr="mean") for et in edge_types}, aggr="sum")
            for _ in range(2))
        self.head = nn.Linear(hidden, 1)
        self.modality_outputs: dict[str, Tensor] = {}

    def forward(self, x_dict: Mapping[str, Tensor], edge_index_dict: Mapping, edge_weight_dict: Mapping | None = None,
                available_dict: Mapping[str, Tensor] | None = None) -> Tensor:
        h = {t: torch.relu(self.lin[t](x)) for t, x in x_dict.items()}
        for conv in self.convs:
            kwargs = {"edge_weight_dict": dict(edge_weight_dict)} if edge_weight_dict else {}
            new = conv(h, dict(edge_index_dict), **kwargs)
            h = {t: nn.functional.dropout(torch.relu(new.get(t, 0) + h[t]), self.dropout, self.training) for t in h}
        return self.head(h["patient"]).squeeze(-1)
