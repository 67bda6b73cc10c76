"""The package's structure: no import circle, the engine below the applications, one random-effects protocol."""

import glmmkit as gk
from glmmkit.engine.blocked import Structure
from glmmkit.engine.resystem import RandomEffectsSystem, SystemFactor

from .import_graph import cycles, graph


def test_no_import_circle():
    assert cycles(graph()) == []


def test_the_engine_and_the_formula_layer_import_no_application():
    apps = ("glmmkit.phylo", "glmmkit.gwas", "glmmkit.meta", "glmmkit.singlecell", "glmmkit.plots",
            "glmmkit.demo", "glmmkit.cli", "glmmkit.report", "glmmkit.diagnostics")
    g = graph()
    for m, deps in g.items():
        if m.startswith(("glmmkit.engine", "glmmkit.formula", "glmmkit.families", "glmmkit.links")):
            bad = sorted(d for d in deps if d.startswith(apps))
            assert not bad, f"{m} imports {bad}"


def test_both_systems_follow_the_protocol():
    for cls in (Structure, gk.phylo.TreeSystem):
        assert RandomEffectsSystem in cls.__mro__
        for name in ("raw", "factor", "zlam_u", "lam_zt", "penalty", "ranef_condvar", "_orig_terms"):
            assert callable(getattr(cls, name)), (cls, name)
        assert isinstance(cls.supports_joint, bool)
    assert SystemFactor in gk.phylo.sparse.TreeSystemFactor.__mro__
