"""Every public function, class and method has a numpydoc docstring: Parameters where it takes arguments,
Returns where it returns a value (an override may inherit its base's contract)."""

from .docstring_audit import audit, problems_of


def test_every_public_object_is_documented():
    n, problems = audit()
    assert n > 500  # the audit sees the whole package
    assert not problems, f"{len(problems)} public objects lack numpydoc sections:\n" + "\n".join(problems[:40])


def test_the_audit_can_fail():
    def undocumented(x):
        return x

    def documented(x):
        """Return x.

        Parameters
        ----------
        x : object
            Anything.

        Returns
        -------
        object
            x.
        """
        return x

    assert problems_of(undocumented, "undocumented")
    assert not problems_of(documented, "documented")
