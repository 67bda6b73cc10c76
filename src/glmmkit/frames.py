"""Data frames in: pandas as they are, polars converted once to pandas at the entry point (so that every
later stage, formulaic included, sees one kind of frame)."""

from __future__ import annotations

import pandas as pd

from .errors import InputError


def as_pandas(data, what: str = "data") -> pd.DataFrame:
    """A pandas DataFrame from a pandas or polars frame (a polars LazyFrame is collected).

    Parameters
    ----------
    data : pandas.DataFrame, polars.DataFrame or polars.LazyFrame
        The table.
    what : str
        Its name in messages.

    Returns
    -------
    pandas.DataFrame
        The same table (no copy for pandas); polars categorical columns stay categorical.
    """
    if isinstance(data, pd.DataFrame):
        return data
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        if type(data).__name__ == "LazyFrame":
            data = data.collect()
        if type(data).__name__ == "DataFrame":
            try:
                return data.to_pandas()
            except ImportError as err:  # polars needs pyarrow for the conversion
                raise InputError(f"converting a polars {what} to pandas needs pyarrow ({err}): "
                                 "pip install glmmkit[polars]") from None
    raise InputError(f"{what} must be a pandas or polars DataFrame, got {type(data).__name__}")
