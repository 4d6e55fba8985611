"""The Cox partial-likelihood loss shared by DeepSurv and the graph fusion models."""

from __future__ import annotations

import warnings
from typing import Literal

__all__ = ["cox_loss"]


def cox_loss(log_risk, durations, events, *, ties: Literal["efron", "breslow"] = "efron"):
    """Mean negative Cox partial log-likelihood (``torchsurv``); zero, with a gradient, when there is no event.

    Examples
    --------
    >>> import torch
    >>> r = torch.tensor([0.0, 0.0]); t = torch.tensor([1.0, 2.0])
    >>> round(float(cox_loss(r, t, torch.tensor([True, False]))), 4)  # log 2: two at risk, equal risk
    0.6931
    >>> float(cox_loss(r, t, torch.tensor([False, False])))
    0.0
    """
    from torchsurv.loss.cox import neg_partial_log_likelihood

    events = events.bool()
    if not bool(events.any()):  # no event: no partial likelihood, no gradient
        return (log_risk * 0.0).sum()
    # the partial likelihood ignores a constant shift: centring on the largest risk (and float64) keeps the
    # exponentials of the risk sets finite when a network's outputs grow large
    shifted = (log_risk - log_risk.detach().max()).double()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchsurv's notes on ties
        loss = neg_partial_log_likelihood(shifted, events, durations.double(), ties_method=ties, reduction="mean")
    return loss.to(log_risk.dtype)
