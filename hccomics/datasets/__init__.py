"""Demo cohort with planted ground truth, and bundled gene sets."""

from hccomics.datasets.demo import DEMO_PROFILES, DemoProfile, demo_cohort_dir, make_demo_cohort
from hccomics.datasets.genesets import COLLECTIONS, GeneSet, gene_set, gene_sets, read_gmt

__all__ = [
    "make_demo_cohort", "demo_cohort_dir", "DEMO_PROFILES", "DemoProfile",
    "gene_sets", "gene_set", "read_gmt", "GeneSet", "COLLECTIONS",
]
