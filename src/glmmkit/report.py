"""``Fit.report(path)``: one self-contained HTML page (tables, intervals, figures embedded as PNG)."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import pandas as pd

from .output import write_text


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(df: pd.DataFrame) -> str:
    return df.to_html(float_format=lambda v: f"{v:.4g}", border=0, classes="t", na_rep="")


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
        The file written (a failed interval is reported in the page, not raised).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from .plots import inference as figs
    from .summary import format_summary

    parts = [f"<h1>{html.escape(title or 'glmmkit fit: ' + fit.spec.formula)}</h1>",
             "<h2>Summary</h2>", f"<pre>{html.escape(format_summary(fit))}</pre>",
             "<h2>Fixed effects</h2>", _table(fit.coef_table),
             "<h2>Random effects</h2>", _table(fit.varcorr)]
    try:
        ci = fit.confint(method=intervals)
        parts += [f"<h2>{intervals.capitalize()} confidence intervals (95%)</h2>", _table(ci)]
    except Exception as err:  # a report still comes out; say what failed  # noqa: BLE001
        parts += [f"<p>Intervals ({intervals}) could not be computed: {html.escape(str(err))}</p>"]
    try:
        parts += ["<h2>Variance explained</h2>", _table(pd.concat([fit.r2(), fit.icc()]).to_frame("value"))]
    except ValueError as err:  # R^2 is defined for the common families only
        parts += [f"<p>R<sup>2</sup>: {html.escape(str(err))}</p>"]
    images = [("Fixed effects", figs.coef_plot(fit)), ("Fitted vs observed", figs.fitted_observed(fit))]
    for g in list(fit.ranef)[:3]:
        images.append((f"Random effects: {g}", figs.caterpillar(fit, g)))
    numeric = [c for c in fit.spec.data.columns if c in fit.spec.formula.split("~", 1)[1].split("(")[0]
               and pd.api.types.is_numeric_dtype(fit.spec.data[c]) and c not in fit.spec.response]
    if numeric:
        images.append((f"Effect of {numeric[0]}", figs.effects_plot(fit, numeric[0])))
    parts.append("<h2>Figures</h2>")
    for caption, fig in images:
        parts.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{_png(fig)}">'
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}"
             "table.t{border-collapse:collapse;font-size:13px}table.t td,table.t th{padding:2px 8px;"
             "border-bottom:1px solid #ddd;text-align:right}pre{background:#f6f6f6;padding:1em;font-size:12px}"
             "figure{display:inline-block;margin:0.5em}img{max-width:460px}")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>glmmkit report</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>")
    return write_text(path, page)
