"""Figures of differential expression, enrichment and signature scores (computed results in, Figure out)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["volcano", "ma_plot", "pca_scatter", "top_genes_heatmap", "enrichment_dotplot",
           "gsea_running_score", "score_by_group"]

_UP, _DOWN, _NS = "#d7301f", "#2b8cbe", "#bdbdbd"


def _label(de: pd.DataFrame) -> pd.Series:
    return de["symbol"].fillna(pd.Series(de.index, index=de.index)) if "symbol" in de else pd.Series(de.index, index=de.index)


def _colour(de: pd.DataFrame, alpha: float) -> np.ndarray:
    sig = de["padj"] < alpha
    return np.where(sig & (de["log2FoldChange"] > 0), _UP, np.where(sig & (de["log2FoldChange"] < 0), _DOWN, _NS))


def volcano(de: pd.DataFrame, *, alpha: float = 0.05, label_top: int = 10, highlight: list[str] | None = None,
            title: str = "Volcano plot") -> go.Figure:
    """log2 fold change against -log10 p-value; significant genes coloured, top genes and ``highlight`` labelled.

    Examples
    --------
    >>> de = pd.DataFrame({"log2FoldChange": [1.0, -0.5], "pvalue": [1e-5, 0.3], "padj": [1e-4, 0.4]}, index=["IL6", "ALB"])
    >>> volcano(de).data[0].type
    'scattergl'
    """
    d = de.dropna(subset=["pvalue"])
    y = -np.log10(d["pvalue"].clip(lower=1e-300))
    labels = _label(d)
    fig = go.Figure(go.Scattergl(x=d["log2FoldChange"], y=y, mode="markers", text=labels,
                                 marker=dict(color=_colour(d, alpha), size=5, opacity=0.7),
                                 hovertemplate="%{text}<br>log2FC %{x:.2f}<br>-log10 p %{y:.1f}<extra></extra>"))
    top = list(d.nsmallest(label_top, "pvalue").index) + [g for g in (highlight or []) if g in d.index]
    for g in dict.fromkeys(top):
        fig.add_annotation(x=d.at[g, "log2FoldChange"], y=y[g], text=labels[g], showarrow=True, arrowhead=0,
                           ax=15, ay=-15, font=dict(size=10, color="black" if g not in (highlight or []) else _UP))
    n_up = int(((d.padj < alpha) & (d.log2FoldChange > 0)).sum())
    n_down = int(((d.padj < alpha) & (d.log2FoldChange < 0)).sum())
    fig.update_layout(title=f"{title}: {n_up} up, {n_down} down at padj < {alpha}", xaxis_title="log2 fold change",
                      yaxis_title="-log10 p-value", showlegend=False)
    return fig


def ma_plot(de: pd.DataFrame, *, alpha: float = 0.05, title: str = "MA plot") -> go.Figure:
    """log2 fold change against mean normalised count (log scale)."""
    d = de.dropna(subset=["log2FoldChange"])
    fig = go.Figure(go.Scattergl(x=d["baseMean"], y=d["log2FoldChange"], mode="markers", text=_label(d),
                                 marker=dict(color=_colour(d.fillna({"padj": 1.0}), alpha), size=4, opacity=0.7),
                                 hovertemplate="%{text}<br>mean %{x:.1f}<br>log2FC %{y:.2f}<extra></extra>"))
    fig.add_hline(y=0, line_color="black", line_width=1)
    fig.update_layout(title=title, xaxis_title="mean of normalised counts", yaxis_title="log2 fold change", xaxis_type="log")
    return fig


def pca_scatter(coords: np.ndarray, obs: pd.DataFrame, *, color: str, variance_ratio: np.ndarray | None = None,
                title: str = "PCA of variance-stabilised expression") -> go.Figure:
    """First two principal components coloured by an ``obs`` column (missing values shown as 'NA')."""
    groups = obs[color].astype("string").fillna("NA")
    fig = go.Figure()
    for g in sorted(groups.unique()):
        m = (groups == g).to_numpy()
        fig.add_trace(go.Scatter(x=coords[m, 0], y=coords[m, 1], mode="markers", name=str(g),
                                 text=obs.index[m], hovertemplate="%{text}<extra></extra>", marker=dict(size=7, opacity=0.8)))
    vr = variance_ratio if variance_ratio is not None else [np.nan, np.nan]
    fig.update_layout(title=title, legend_title_text=color, xaxis_title=f"PC1 ({vr[0]:.1%})", yaxis_title=f"PC2 ({vr[1]:.1%})")
    return fig


def top_genes_heatmap(expression: pd.DataFrame, groups: pd.Series, *, title: str = "Top genes (row z-scores)") -> go.Figure:
    """Heatmap of samples x genes (already selected), rows z-scored per gene, samples ordered by group."""
    order = groups.astype("string").fillna("NA").sort_values(kind="stable").index
    x = expression.loc[order]
    z = ((x - x.mean()) / x.std(ddof=1).replace(0, np.nan)).T
    fig = go.Figure(go.Heatmap(z=z.to_numpy(), x=list(order), y=list(z.index), colorscale="RdBu_r", zmid=0,
                               colorbar=dict(title="z"), hovertemplate="%{y} in %{x}: z=%{z:.2f}<extra></extra>"))
    g = groups.astype("string").fillna("NA").loc[order]
    bounds = np.flatnonzero(g.to_numpy()[1:] != g.to_numpy()[:-1])
    for b in bounds:
        fig.add_vline(x=b + 0.5, line_color="black", line_width=2)
    fig.update_layout(title=f"{title}; samples ordered by {groups.name}", xaxis=dict(showticklabels=False, title="samples"),
                      height=max(400, 14 * z.shape[0] + 150))
    return fig


def enrichment_dotplot(table: pd.DataFrame, *, top: int = 15, score: str = "fdr", size: str = "overlap",
                       title: str = "Enrichment") -> go.Figure:
    """Dot plot of the top tested sets: x = -log10 FDR, size = overlap (ORA) or ``|NES|``-scaled (GSEA)."""
    t = table[table["status"] == "tested"].nsmallest(top, score).iloc[::-1]
    x = -np.log10(t[score].clip(lower=1e-300).astype(float))
    s = t[size].abs().astype(float)
    fig = go.Figure(go.Scatter(
        x=x, y=[f"{i} ({c})" for i, c in zip(t.index, t["collection"])], mode="markers",
        marker=dict(size=8 + 22 * s / max(s.max(), 1e-9), color=t.get("nes", t.get("odds_ratio")), colorscale="Viridis",
                    showscale=True, colorbar=dict(title="NES" if "nes" in t else "odds ratio")),
        customdata=np.c_[t["size_in_universe"] if "size_in_universe" in t else t["size_in_ranking"], t[size]],
        hovertemplate="%{y}<br>-log10 FDR %{x:.1f}<br>set size %{customdata[0]}, " + size + " %{customdata[1]}<extra></extra>",
    ))
    fig.add_vline(x=-np.log10(0.05), line_dash="dash", line_color="grey")
    fig.update_layout(title=title, xaxis_title="-log10 FDR", height=max(400, 26 * len(t) + 150), margin=dict(l=220))
    return fig


def gsea_running_score(running: dict, ranking: pd.Series | dict, *, term: str, nes: float | None = None,
                       fdr: float | None = None) -> go.Figure:
    """GSEA running enrichment score of one set, its hits, and the ranked metric below."""
    ranking = pd.Series(ranking)
    res, hits = np.asarray(running["res"]), np.asarray(running["hits"])
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.6, 0.1, 0.3], vertical_spacing=0.02)
    fig.add_trace(go.Scatter(y=res, mode="lines", line=dict(color="#1a9850"), name="running ES"), row=1, col=1)
    fig.add_trace(go.Scatter(x=hits, y=np.zeros_like(hits), mode="markers", marker=dict(symbol="line-ns", size=14,
                             line=dict(width=1, color="black")), name="set members"), row=2, col=1)
    fig.add_trace(go.Scatter(y=ranking.to_numpy(), mode="lines", fill="tozeroy", line=dict(color="grey"),
                             name="ranking metric"), row=3, col=1)
    stats = ", ".join(s for s in (f"NES {nes:.2f}" if nes is not None else "", (f"FDR {fdr:.2g}" if fdr > 0 else "FDR below permutation resolution") if fdr is not None else "") if s)
    fig.update_yaxes(title_text="ES", row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=2, col=1)
    fig.update_yaxes(title_text="metric", row=3, col=1)
    fig.update_xaxes(title_text="gene rank", row=3, col=1)
    fig.update_layout(title=f"GSEA: {term}" + (f" ({stats})" if stats else ""), showlegend=False, height=520)
    return fig


def score_by_group(scores: pd.Series, groups: pd.Series, *, auc: float | None = None, title: str | None = None) -> go.Figure:
    """Box and points of a sample score per group (e.g. PI3K-Akt score by ``recurrence_2y``)."""
    g = groups.astype("string").fillna("NA")
    fig = go.Figure()
    for level in sorted(g.unique()):
        m = g == level
        fig.add_trace(go.Box(y=scores[m], name=f"{groups.name}={level} (n={int(m.sum())})", boxpoints="all",
                             jitter=0.4, pointpos=0, marker=dict(size=4, opacity=0.6)))
    extra = f" (AUC {auc:.2f})" if auc is not None else ""
    fig.update_layout(title=(title or f"{scores.name} by {groups.name}") + extra, yaxis_title=str(scores.name), showlegend=False)
    return fig
