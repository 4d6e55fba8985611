"""Per-patient work in forked worker processes, with a progress bar; results in job order."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any


def map_processes(fn: Callable[..., Any], jobs: Sequence[tuple[tuple, dict]], *, n_jobs: int | None, desc: str,
                  unit: str) -> list:
    """``[fn(*args, **kwargs) for args, kwargs in jobs]`` in up to ``n_jobs`` processes (default: every core).

    Fork, not spawn: spawn would re-run a user's script without a ``__main__`` guard. Where fork is missing, or
    with one job, the work runs in this process. Results do not depend on ``n_jobs``.
    """
    from tqdm.auto import tqdm

    n = max(1, min(n_jobs or os.cpu_count() or 1, len(jobs)))
    if "fork" not in multiprocessing.get_all_start_methods():
        n = 1
    results = []
    with tqdm(total=len(jobs), desc=desc, unit=unit) as bar:
        if n == 1:
            for args, kwargs in jobs:
                results.append(fn(*args, **kwargs))
                bar.update()
        else:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork")) as pool:
                futures = [pool.submit(fn, *args, **kwargs) for args, kwargs in jobs]
                for fut in futures:
                    results.append(fut.result())
                    bar.update()
    return results
