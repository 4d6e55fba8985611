"""Early stopping on a validation loss, keeping the best weights (shared by DeepSurv and the graph models)."""

from __future__ import annotations

import math


class EarlyStopping:
    """Track a validation loss; ``step`` returns True once it has not improved for ``patience`` epochs.

    Examples
    --------
    >>> import torch
    >>> net, stop = torch.nn.Linear(1, 1), EarlyStopping(patience=2)
    >>> [stop.step(v, net) for v in (3.0, 2.0, 2.5, 2.4)]
    [False, False, False, True]
    >>> stop.best, stop.best_epoch
    (2.0, 2)
    """

    def __init__(self, *, patience: int, min_delta: float = 1e-6) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best, self.best_epoch, self.best_state, self.wait, self.epoch = math.inf, 0, None, 0, 0

    def step(self, value: float, net) -> bool:
        self.epoch += 1
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, self.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            return False
        self.wait += 1
        return self.wait >= self.patience

    def restore(self, net) -> None:
        """Load the best weights seen into ``net`` (nothing when no epoch was recorded)."""
        if self.best_state is not None:
            net.load_state_dict(self.best_state)
