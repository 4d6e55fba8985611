"""Transcriptomics: differential expression (PyDESeq2), VST, embeddings, enrichment (gseapy), signature scores."""

from hccomics.omics._inputs import AllZeroGenesWarning
from hccomics.omics.de import DroppedSamplesWarning, ShrinkageSignFlipWarning, differential_expression, variance_stabilize
from hccomics.omics.embedding import embed
from hccomics.omics.enrichment import NoOverlapWarning, enrich, prerank, resolve_gene_sets
from hccomics.omics.signatures import score_separation, score_signature, signature_scores

__all__ = [
    "differential_expression", "variance_stabilize", "embed", "enrich", "prerank", "resolve_gene_sets",
    "score_signature", "signature_scores", "score_separation", "AllZeroGenesWarning", "DroppedSamplesWarning",
    "ShrinkageSignFlipWarning", "NoOverlapWarning",
]
