"""What every figure function shares: matplotlib on demand, and saving the figure atomically."""

from __future__ import annotations

from ..output import save_figure


def plt_module():
    """matplotlib.pyplot, or an ImportError that says how to install it.

    Returns
    -------
    module
        ``matplotlib.pyplot``.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("figures need matplotlib: pip install glmmkit[plots]") from None
    return plt


def finish(fig, path, dpi: int = 120):
    """Lay the figure out and, when ``path`` is given, save it atomically.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str, path-like or None
        Where to save it (format from the suffix); None keeps it in memory only.
    dpi : int
        Resolution of raster formats.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig``.
    """
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig
