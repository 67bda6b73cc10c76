"""Reading users' text tables (CSV/TSV, PLINK .fam/.bim, phenotype files): every failure is a FileFormatError
that names the file and, where known, the line."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .errors import FileFormatError, MissingFileError

#: NA strings of ``--na-values``' default: empty cells and R's NA only (a level named "None" stays a level)
DEFAULT_NA = ("", "NA")


def require_file(path, what: str) -> Path:
    """``path`` as a Path, or a MissingFileError naming ``what``.

    Parameters
    ----------
    path : str or path-like
        The file.
    what : str
        What the file is, for the message.

    Returns
    -------
    pathlib.Path
        The path.
    """
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"{what}: no such file: {p}")
    if p.is_dir():
        raise FileFormatError(f"{what}: {p} is a folder, not a file")
    return p


def read_text_table(path, what: str, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` with the file checked first: present, not empty, text, and not ragged.

    Parameters
    ----------
    path : str or path-like
        The file.
    what : str
        What the file is (``"data"``, ``"the .fam file"``), for messages.
    **kwargs
        Passed to ``pandas.read_csv``.

    Returns
    -------
    pandas.DataFrame
        The table.
    """
    p = require_file(path, what)
    with open(p, "rb") as fh:
        head = fh.read(8192)
    if not head.strip():
        raise FileFormatError(f"{what} {p} is empty")
    compressed = head[:2] == b"\x1f\x8b" or p.suffix in (".gz", ".bz2", ".zip", ".xz", ".zst")
    if b"\x00" in head and not compressed:
        raise FileFormatError(f"{what} {p} is not a text table (it holds binary data)")
    try:
        return pd.read_csv(p, **kwargs)
    except pd.errors.EmptyDataError:
        raise FileFormatError(f"{what} {p} has no columns") from None
    except pd.errors.ParserError as err:
        line = re.search(r"line (\d+)", str(err))
        where = f" at line {line.group(1)}" if line else ""
        raise FileFormatError(f"{what} {p} is ragged or malformed{where}: {err}") from None
    except (UnicodeDecodeError, OSError, EOFError) as err:
        raise FileFormatError(f"{what} {p} cannot be read as text: {err}") from None
    except (ValueError, TypeError) as err:  # a dtype pandas cannot apply, a bad usecols, ...
        raise FileFormatError(f"{what} {p}: {err}") from None
