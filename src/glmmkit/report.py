"""``Fit.report(path)``: one self-contained HTML page a scientist can share.

A grid of cards, each figure drawn at one size and shown at the card's width: the summary; the fixed effects
(with df and p), the anova table, the random effects and the intervals as tables of formatted numbers (a
missing value is a dash, never ``None``); the coefficient plot; effects with confidence bands from
``predict(se_fit=True)``; marginal means of the first factor with their pairwise contrasts; the diagnostic
(a binned calibration plot for a binary response); caterpillar plots with the levels labelled.
"""

from __future__ import annotations

import base64
import html
import io
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .output import write_text

#: every figure in the report is drawn at this size (inches) and shown at the card's width
FIGURE_SIZE = (6.4, 4.4)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def format_number(v) -> str:
    """A table cell: 4 significant digits, p-values below 1e-4 in scientific notation, a dash for missing.

    Parameters
    ----------
    v : object
        The value.

    Returns
    -------
    str
        The text.
    """
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "&ndash;"
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v)}"
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            return "&infin;" if v > 0 else "&minus;&infin;"
        a = abs(v)
        if a != 0 and (a < 1e-4 or a >= 1e6):
            return f"{v:.3g}".replace("e-0", "e-").replace("e+0", "e+")
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame) -> str:
    cells = df.copy().astype(object)
    for c in cells.columns:
        cells[c] = [format_number(v) for v in df[c]]
    plain = isinstance(df.index, pd.RangeIndex)  # a row number says nothing: leave it out
    index = [html.escape(str(i)) for i in df.index]
    names = list(df.columns) if plain else [df.index.name or ""] + list(df.columns)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in names)
    rows = "".join("<tr>" + ("" if plain else "<th>" + i + "</th>") + "".join(f"<td>{v}</td>" for v in r) + "</tr>"
                   for i, r in zip(index, cells.itertuples(index=False)))
    return f"<table class='t'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _card(title: str, body: str, wide: bool = False) -> str:
    return (f"<section class='card{' wide' if wide else ''}'><h2>{html.escape(title)}</h2>{body}</section>")


def _figure(caption: str, fig) -> str:
    return (f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{_png(fig)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _first_predictors(fit) -> tuple:
    """(the first factor, the first numeric covariate) of the fixed effects, None where there is none."""
    from .inference.emmeans import _model_variables

    try:
        used, categorical, _ = _model_variables(fit.spec)
    except Exception:  # noqa: BLE001  (a model without a formulaic fixed part)
        return None, None
    facs = [v for v in used if v in categorical]
    nums = [v for v in used if v not in categorical]
    return (facs[0] if facs else None), (nums[0] if nums else None)


def write_report(fit, path, *, intervals: str = "profile", title: str | None = None) -> Path:
    """Write the HTML report of a fit, atomically.

    Parameters
    ----------
    fit : Fit
        The fitted model.
    path : str or path-like
        The HTML file.
    intervals : {"profile", "wald", "boot"}
        ``fit.confint``'s method for the interval table.
    title : str, optional
        The page's title.

    Returns
    -------
    pathlib.Path
        The file written (a part that cannot be computed is reported in the page, not raised).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .inference import anova, emmeans
    from .plots import inference as figs
    from .summary import format_summary

    def new_ax():
        return plt.subplots(figsize=FIGURE_SIZE)[1]

    def attempt(what, make):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return make()
        except Exception as err:  # noqa: BLE001  (a report still comes out; it says what failed)
            return f"<p class='note'>{html.escape(what)} could not be computed: {html.escape(str(err))}</p>"

    cards = [_card("Summary", f"<pre>{html.escape(format_summary(fit))}</pre>", wide=True),
             _card("Fixed effects", _table(fit.coef_table)
                   + ("<p class='note'>df and p: Satterthwaite (lmerTest)</p>" if fit.is_lmm else
                      "<p class='note'>Wald z tests</p>"))]
    typ = 3 if fit.is_lmm else 2
    cards.append(_card(f"Anova (type {'III' if typ == 3 else 'II'})",
                       attempt("The anova table", lambda: _table(anova(fit, type=typ)))))
    cards.append(_card("Random effects", _table(fit.varcorr)))
    cards.append(_card(f"{intervals.capitalize()} confidence intervals (95%)",
                       attempt(f"{intervals.capitalize()} intervals", lambda: _table(fit.confint(method=intervals)))))
    cards.append(_card("Variance explained", attempt(
        "R<sup>2</sup>", lambda: _table(pd.concat([fit.r2(), fit.icc()]).to_frame("value")))))
    cards.append(_card("Fixed effects, with intervals", attempt(
        "The coefficient plot", lambda: _figure("Estimates with 95% intervals", figs.coef_plot(fit, ax=new_ax())))))
    fac, num = _first_predictors(fit)
    if num is not None:
        cards.append(_card(f"Effect of {num}", attempt(
            "The effect plot", lambda: _figure("Population-level prediction with a 95% confidence band "
                                               "(predict(se_fit=True))", figs.effects_plot(fit, num, ax=new_ax())))))
    if fac is not None:
        kind = "response" if not fit.is_lmm else "link"

        def means():
            em = emmeans(fit, fac, type=kind)
            ct = em.contrast("pairwise")
            ax = plt.subplots(figsize=(FIGURE_SIZE[0], min(0.45 * len(em.table) + 1.4, FIGURE_SIZE[1])))[1]
            return (_table(em.table.set_index(fac)) + "<h3>Pairwise contrasts (Tukey)</h3>"
                    + _table(ct.table.set_index("contrast"))
                    + _figure(f"Marginal means of {fac} with 95% intervals", em.plot(ax=ax)))

        cards.append(_card(f"Marginal means of {fac}", attempt("The marginal means", means)))
    cards.append(_card("Diagnostics", attempt(
        "The diagnostic plot", lambda: _figure("Calibration (binned) or fitted against observed",
                                               figs.fitted_observed(fit, ax=new_ax())))))
    for g in list(fit.ranef)[:3]:
        ncol = fit.ranef[g].shape[1]
        cards.append(_card(f"Random effects: {g}", attempt(
            f"The caterpillar plot of {g}", lambda g=g: _figure(
                "Conditional modes with 95% intervals, sorted", figs.caterpillar(fit, g))), wide=ncol > 1))
    style = ("body{font-family:system-ui,sans-serif;max-width:1280px;margin:1.5em auto;padding:0 1em;color:#222}"
             "h1{font-size:1.4em}h2{font-size:1.05em;margin:0 0 .5em}h3{font-size:.95em}"
             ".grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:1em;align-items:start}"
             ".card{border:1px solid #ddd;border-radius:6px;padding:.8em 1em;background:#fff;overflow-x:auto}"
             ".card.wide{grid-column:1/-1}"
             "table.t{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}"
             "table.t td,table.t th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}"
             "table.t th:first-child{text-align:left}"
             "pre{background:#f6f6f6;padding:.8em;font-size:12px;overflow-x:auto}"
             "figure{margin:.5em 0}img{width:100%;max-width:760px;height:auto;display:block}"
             "figcaption{font-size:12px;color:#555}.note{font-size:12px;color:#555}")
    heading = html.escape(title or "glmmkit fit: " + fit.spec.formula)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>glmmkit report</title><style>{style}</style>"
            f"</head><body><h1>{heading}</h1><div class='grid'>{''.join(cards)}</div></body></html>")
    return write_text(path, page)
