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


def axes_for(ax, n: int, figsize, **kwargs):
    """The figure and n axes to draw on: the caller's (``ax``: one Axes, or a sequence of n) or new ones.

    Parameters
    ----------
    ax : matplotlib.axes.Axes, sequence of Axes or None
        Where the caller wants the drawing.
    n : int
        How many panels the figure function draws.
    figsize : tuple
        The size of a new figure.
    **kwargs
        Passed to ``plt.subplots`` for a new figure (``sharey``, ...).

    Returns
    -------
    tuple
        (figure, list of n axes).
    """
    from ..errors import InputError

    if ax is None:
        plt = plt_module()
        fig, axes = plt.subplots(1, n, figsize=figsize, squeeze=False, **kwargs)
        return fig, list(axes[0])
    axes = list(ax) if isinstance(ax, (list, tuple)) or getattr(ax, "ndim", 0) else [ax]
    axes = [a for a in (axes if not hasattr(axes[0], "ravel") else list(ax.ravel()))]
    if len(axes) != n:
        raise InputError(f"this figure has {n} panel(s): pass ax as {'one Axes' if n == 1 else f'{n} Axes'}, "
                         f"got {len(axes)}")
    return axes[0].figure, axes
