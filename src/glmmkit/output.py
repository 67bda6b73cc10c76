"""Writing results: strict JSON, atomic files, output paths checked before the work starts.

Every file glmmkit writes goes through ``atomic_path``: it is written under a temporary name in the
same folder and renamed over the target only when complete, so a failed or killed run leaves any
earlier file intact and never a half-written one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import OutputPathError


def json_safe(obj):
    """``obj`` with numpy scalars and arrays as Python values and every non-finite number as None.

    Parameters
    ----------
    obj : object
        Nested dicts, lists, tuples, numpy and pandas values.

    Returns
    -------
    object
        Something ``json.dumps(..., allow_nan=False)`` accepts.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if obj is None or isinstance(obj, str):
        return obj
    try:
        import pandas as pd

        if obj is pd.NA or obj is pd.NaT:
            return None
        if isinstance(obj, pd.DataFrame):
            return json_safe(obj.to_dict(orient="records"))
        if isinstance(obj, pd.Series):
            return json_safe(obj.to_dict())
    except ImportError:  # pragma: no cover - pandas is a core dependency
        pass
    return str(obj)


def dumps_strict(obj, **kwargs) -> str:
    """Strict JSON text of ``obj`` (non-finite numbers as null; never NaN or Infinity).

    Parameters
    ----------
    obj : object
        What to serialise; passed through ``json_safe``.
    **kwargs
        Passed to ``json.dumps`` (``indent``, ...).

    Returns
    -------
    str
        The JSON text.
    """
    return json.dumps(json_safe(obj), allow_nan=False, **kwargs)


def check_output_path(path, what: str = "output") -> Path:
    """Refuse, before any work, an output path that cannot be written.

    Parameters
    ----------
    path : str or path-like
        The file to be written (or a prefix: its folder must exist).
    what : str
        The option's name, for the message (``--out``, ``--json``).

    Returns
    -------
    pathlib.Path
        The path.
    """
    if path is None or str(path) == "":
        raise OutputPathError(f"{what}: an empty path; give a file name")
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{what} {str(p)!r} is a folder; give a file name (or prefix) inside it")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise OutputPathError(f"{what} {str(p)!r}: the folder {str(folder)!r} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise OutputPathError(f"{what} {str(p)!r}: the folder {str(folder)!r} is not writable")
    if p.exists() and not os.access(p, os.W_OK):
        raise OutputPathError(f"{what} {str(p)!r} exists and is not writable")
    return p


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on failure remove it.

    Parameters
    ----------
    path : str or path-like
        The final file.

    Yields
    ------
    str
        The temporary file name to write (same folder, same suffix, so writers that look at the
        suffix, such as matplotlib or gzip, behave as for the final name).
    """
    p = check_output_path(path)
    folder = p.parent if str(p.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + "".join(p.suffixes), dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_paths(paths):
    """``atomic_path`` for a set of files written together (a GRM's three files, a saved null model):
    every file is renamed into place only after all were written, so a failure leaves the old set.

    Parameters
    ----------
    paths : list of str or path-like
        The final files.

    Yields
    ------
    list of str
        Temporary names, in the same order.
    """
    with contextlib.ExitStack() as stack:
        finals = [check_output_path(p) for p in paths]
        tmps = []
        for p in finals:
            folder = p.parent if str(p.parent) else Path(".")
            fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp" + "".join(p.suffixes), dir=folder)
            os.close(fd)
            tmps.append(tmp)
            stack.callback(_remove_quietly, tmp)
        yield tmps
        for tmp, p in zip(tmps, finals):
            os.replace(tmp, p)


def _remove_quietly(path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def write_text(path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        The file.
    text : str
        Its content (UTF-8).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path, obj) -> Path:
    """Write ``obj`` as strict, indented JSON to ``path`` atomically.

    Parameters
    ----------
    path : str or path-like
        The file.
    obj : object
        What to write (non-finite numbers become null).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    return write_text(path, dumps_strict(obj, indent=2) + "\n")


def write_table(df, path, **kwargs) -> Path:
    """``df.to_csv`` to ``path`` atomically (compression from the final name's suffix).

    Parameters
    ----------
    df : pandas.DataFrame
        The table.
    path : str or path-like
        The file (``.gz`` for gzip).
    **kwargs
        Passed to ``DataFrame.to_csv`` (``sep``, ``index``, ``float_format``, ...).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    kwargs.setdefault("compression", "gzip" if str(path).endswith(".gz") else None)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)


def save_figure(fig, path, **kwargs) -> Path:
    """``fig.savefig`` to ``path`` atomically (format from the final name's suffix).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or path-like
        The file (PNG, PDF, SVG, ...).
    **kwargs
        Passed to ``savefig`` (``dpi``, ...).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    fmt = Path(path).suffix.lstrip(".") or None
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, **kwargs)
    return Path(path)
