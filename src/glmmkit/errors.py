"""Named error classes: every bad input or failed computation raises one of these.

Each is also a built-in exception (``InputError`` is a ``ValueError``, ``FitError`` a
``RuntimeError``), so ``except ValueError`` keeps working.  docs/errors.md lists what raises each
and what to do about it.
"""

from __future__ import annotations


class GlmmkitError(Exception):
    """Base class of glmmkit's errors."""


class InputError(GlmmkitError, ValueError):
    """An argument, a column, a level or a value is not what the function accepts.

    The message names the argument (or column, level, row, sample, file, line) and what would be
    accepted.
    """


class FormulaError(InputError):
    """The model formula cannot be parsed or names something that is not allowed in a formula."""


class FileFormatError(InputError):
    """A file is missing, empty, truncated, binary where text is expected, or ragged."""


class SampleMismatchError(InputError):
    """Samples of two inputs (genotypes, phenotypes, a GRM, a saved null model) do not match by ID."""


class OutputPathError(InputError):
    """An output path cannot be written (missing folder, a folder where a file is wanted, no permission)."""


class FitError(GlmmkitError, RuntimeError):
    """The computation cannot give a usable result for these data (no finite likelihood, a singular
    system that no start value rescues).  The message says what was found and what to try."""


class MissingFileError(FileFormatError):
    """A file that an input names does not exist (a ``FileFormatError``, so a ``ValueError``)."""
