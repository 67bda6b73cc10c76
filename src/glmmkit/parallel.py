"""Run independent tasks in this process, in local processes, or on a Dask cluster -- same results.

``map_tasks(fn, items, shared=obj)`` calls ``fn(shared, item)`` for every item and returns the results in
the order of ``items``.  ``workers > 1`` uses a process pool (``shared`` sent to each worker once, by the
pool's initializer), with at most ``2 * workers`` items in flight
(``items`` may be a generator: a large input is never materialised as pieces all at once); ``client`` (a
``dask.distributed.Client``) sends ``shared`` to the workers once and spreads the items there.  A progress
bar counts finished tasks.

``with shared_pool(workers):`` keeps one process pool for every ``map_tasks`` call inside it that asks for
that many workers (several analyses in a row -- the cell types of a single-cell study -- start their
processes once).  Each call's shared object then reaches a worker the first time that worker meets the call:
a task carries the call's key, a worker without the object answers ``_MISSING`` and the task is sent again
with it; the worker keeps the latest one."""

from __future__ import annotations

import contextlib
import itertools
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
        if _ACTIVE is not None and _ACTIVE[0] == workers:
            return _keyed(_ACTIVE[1], fn, items, shared, workers, desc, progress_bar, total)
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


#: the pool of the innermost ``shared_pool`` (workers, executor), or None
_ACTIVE: tuple | None = None
#: a worker process's shared object of the latest call it served: {key: object}
_KEYED: dict = {}
#: a worker's answer to a task whose call's shared object it does not hold
_MISSING = "__glmmkit_shared_object_missing__"
_KEYS = itertools.count()


@contextlib.contextmanager
def shared_pool(workers: int):
    """One process pool for the ``map_tasks`` calls inside the block that ask for ``workers`` processes.

    Parameters
    ----------
    workers : int
        Processes (1: no pool; the calls run here).

    Returns
    -------
    contextlib.AbstractContextManager
        The block's context (yields nothing useful).
    """
    global _ACTIVE
    if workers <= 1:
        yield None
        return
    previous = _ACTIVE
    with ProcessPoolExecutor(max_workers=workers) as ex:
        _ACTIVE = (workers, ex)
        try:
            yield ex
        finally:
            _ACTIVE = previous


def _call_keyed(fn, key, send, shared, item):
    if send:
        _KEYED.clear()  # the latest call's object only: a worker holds one at a time
        _KEYED[key] = shared
    elif key not in _KEYED:
        return _MISSING
    return fn(_KEYED[key], item)


def _keyed(ex, fn, items, shared, workers, desc, progress_bar, total) -> list:
    key = next(_KEYS)

    def results():
        window: deque = deque()
        for it in items:
            window.append((it, ex.submit(_call_keyed, fn, key, False, None, it)))
            if len(window) >= 2 * workers:
                yield _settle(ex, fn, key, shared, *window.popleft())
        while window:
            yield _settle(ex, fn, key, shared, *window.popleft())

    return list(progress(results(), total=total, desc=desc, enable=progress_bar))


def _settle(ex, fn, key, shared, item, fut):
    r = fut.result()
    if isinstance(r, str) and r == _MISSING:  # that worker had not met this call: again, with the object
        r = ex.submit(_call_keyed, fn, key, True, shared, item).result()
    return r
