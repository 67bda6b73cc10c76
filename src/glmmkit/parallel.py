"""Run independent tasks in this process, in local processes, or on a Dask cluster -- same results.

``map_tasks(fn, items, shared=obj)`` calls ``fn(shared, item)`` for every item and returns the results in
the order of ``items``.  ``workers > 1`` uses a process pool; ``client`` (a ``dask.distributed.Client``)
sends ``shared`` to the workers once and spreads the items there.  A progress bar counts finished tasks."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Sequence

from .progress import progress


def _call(fn, shared, item):
    return fn(shared, item)


def map_tasks(fn: Callable[[Any, Any], Any], items: Sequence, *, shared: Any = None, workers: int = 1,
              client=None, desc: str = "", progress_bar: bool = True) -> list:
    items = list(items)
    if not items:
        return []
    if client is not None:
        from distributed import as_completed

        shared_f = client.scatter(shared, broadcast=True) if shared is not None else None
        futs = [client.submit(_call, fn, shared_f, it, pure=False) for it in items]
        order = {f.key: i for i, f in enumerate(futs)}
        out: list = [None] * len(items)
        for fut in progress(as_completed(futs), total=len(futs), desc=f"{desc} (dask)", enable=progress_bar):
            out[order[fut.key]] = fut.result()
        return out
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            futs = [ex.submit(fn, shared, it) for it in items]
            return [f.result() for f in progress(futs, total=len(futs), desc=desc, enable=progress_bar)]
    return [fn(shared, it) for it in progress(items, total=len(items), desc=desc, enable=progress_bar)]
