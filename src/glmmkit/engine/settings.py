"""Tuning constants of the engine; the environment variable GLMMKIT_<name> overrides one (used for
measurements: e.g. GLMMKIT_GRADIENT=0 runs the derivative-free path)."""

from __future__ import annotations

import os


def setting(name: str, default):
    raw = os.environ.get(f"GLMMKIT_{name}")
    if raw is None:
        return default
    return bool(int(raw)) if isinstance(default, bool) else type(default)(raw)
