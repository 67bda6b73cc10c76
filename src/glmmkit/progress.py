"""A progress bar for long work (tqdm when installed, silent otherwise)."""

from __future__ import annotations


def progress(iterable, *, total: int | None = None, desc: str = "", enable: bool = True):
    """Iterate with a progress bar on standard error (tqdm's when installed; silent without tqdm).

    Parameters
    ----------
    iterable : iterable
        What to iterate.
    total : int, optional
        Its length, when it has none.
    desc : str
        The label.
    enable : bool
        False: iterate silently.

    Returns
    -------
    iterator
        The same items.
    """
    if not enable:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # the core does not need tqdm; glmmkit[all] installs it
        return iterable
    return tqdm(iterable, total=total, desc=desc, leave=False)
