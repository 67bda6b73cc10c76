"""Coding new data exactly as the fitted data were coded (fixed part, random-term columns, zero inflation)."""

from __future__ import annotations

import warnings

import pandas as pd

from ..errors import InputError


def coded_matrix(model_spec, newdata: pd.DataFrame, what: str):
    """A model matrix for new data coded as the fitted data were; a level the fit never saw is an error.

    Parameters
    ----------
    model_spec : formulaic ModelSpec
        Kept from the fit.
    newdata : pandas.DataFrame
        The rows to code.
    what : str
        What the matrix is, for messages.

    Returns
    -------
    formulaic ModelMatrix
    """
    from formulaic.errors import DataMismatchWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataMismatchWarning)
            return model_spec.get_model_matrix(newdata, na_action="ignore")
    except DataMismatchWarning as w:
        raise InputError(f"newdata has a level of a categorical predictor in {what} that the fit never saw: "
                         f"{str(w).split(':', 1)[-1].split('.')[0].strip()}; predict only levels present in the "
                         "fitted data") from None
    except Exception as err:
        raise InputError(f"cannot code newdata for {what}: {type(err).__name__}: {err}") from None
