"""Run independent tasks in this process, in local processes, or on a Dask cluster -- same results.

``map_tasks(fn, items, shared=obj)`` calls ``fn(shared, item)`` for every item and returns the results in
the order of ``items``.  ``workers > 1`` uses a process pool (``shared`` sent to each worker once, by the
pool's initializer), with at most ``2 * workers`` items in flight
(``items`` may be a generator: a large input is never materialised as pieces all at once); ``client`` (a
``dask.distributed.Client``) sends ``shared`` to the workers once and spreads the items there.  A progress
bar counts finished tasks."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable

from .progress import progress


def _call(fn, shared, item):
    return fn(shared, item)


def map_tasks(fn: Callable[[Any, Any], Any], items: Iterable, *, shared: Any = None, workers: int = 1,
              client=None, desc: str = "", progress_bar: bool = True, total: int | None = None) -> list:
    """Call ``fn(shared, item)`` for every item, here, in local processes or on a Dask cluster.

    Parameters
    ----------
    fn : callable
        A picklable function of (shared, item).
    items : iterable
        The items (a generator is consumed lazily in a process pool).
    shared : object, optional
        What every call needs (sent to each Dask worker once).
    workers : int
        Local processes (1: this process).
    client : dask.distributed.Client, optional
        A Dask client (takes precedence over ``workers``).
    desc : str
        The progress bar's label.
    progress_bar : bool
        Show a progress bar.
    total : int, optional
        The number of items, for the bar.

    Returns
    -------
    list
        The results in the order of ``items``.
    """
    if workers > 1 and client is None:
        return _pool(fn, items, shared, workers, desc, progress_bar, total)
    if client is None:
        return [fn(shared, it) for it in progress(items, total=total, desc=desc, enable=progress_bar)]
    items = list(items)
    if not items:
        return []
    from distributed import as_completed

    # hash=False: a fresh key per call, so a second pass over the same shared object does not
    # race the scheduler's release of the first pass's copy.
    shared_f = client.scatter(shared, broadcast=True, hash=False) if shared is not None else None
    futs = [client.submit(_call, fn, shared_f, it, pure=False) for it in items]
    order = {f.key: i for i, f in enumerate(futs)}
    out: list = [None] * len(items)
    for fut in progress(as_completed(futs), total=len(futs), desc=f"{desc} (dask)", enable=progress_bar):
        out[order[fut.key]] = fut.result()
    return out


#: a worker process's copy of the shared object, set once by the pool's initializer
_SHARED: Any = None


def _set_shared(shared) -> None:
    global _SHARED
    _SHARED = shared


def _call_shared(fn, item):
    return fn(_SHARED, item)


def _pool(fn, items, shared, workers, desc, progress_bar, total) -> list:
    # the shared object goes to each worker once (the initializer), not with every task: a GWAS null model
    # that keeps its n x n projection would otherwise be pickled per chunk
    with ProcessPoolExecutor(max_workers=workers, initializer=_set_shared, initargs=(shared,)) as ex:
        results = _in_order(ex, fn, items, 2 * workers)
        return list(progress(results, total=total, desc=desc, enable=progress_bar))


def _in_order(ex, fn, items, window_size: int):
    """Results in the order of ``items``, with at most ``window_size`` submitted and not yet collected."""
    window: deque = deque()
    for it in items:
        window.append(ex.submit(_call_shared, fn, it))
        if len(window) >= window_size:
            yield window.popleft().result()
    while window:
        yield window.popleft().result()
