"""Plotly figure builders: they take computed results and return a Figure."""

from hccomics.pl.cohort import category_counts, follow_up, modality_availability

__all__ = ["modality_availability", "category_counts", "follow_up"]
