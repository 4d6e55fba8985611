"""Exception and warning classes raised by hccomics.

Every error says what was expected, what was found and how to fix it. Catch
:class:`HccomicsError` to handle any of them.
"""

from __future__ import annotations

__all__ = [
    "HccomicsError",
    "OptionError",
    "ManifestError",
    "DataValidationError",
    "ChecksumError",
    "RunDirError",
    "NotebookExecutionError",
    "NotFittedError",
    "HccomicsWarning",
    "ModalityCoverageWarning",
]


class HccomicsError(Exception):
    """Base class of every error raised by hccomics."""


class OptionError(HccomicsError, ValueError):
    """A string option is not one of the allowed values."""


class ManifestError(HccomicsError, ValueError):
    """A data manifest does not follow the schema or points to unusable files.

    Parameters
    ----------
    message
        Summary line.
    problems
        Every problem found, each a human-readable line naming file and row.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        text = message
        if self.problems:
            text += "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


class DataValidationError(ManifestError):
    """A table's content is invalid (counts, clinical ranges, identifiers)."""


class ChecksumError(ManifestError):
    """A file's sha256 does not match the one in its manifest."""


class RunDirError(HccomicsError, OSError):
    """A run folder entry is missing or cannot be read back."""


class NotebookExecutionError(HccomicsError, RuntimeError):
    """A notebook of the suite failed; names the notebook, cell and error."""

    def __init__(self, notebook: str, cell: int | None, ename: str, evalue: str, output: str, source: str = "") -> None:
        self.notebook, self.cell, self.ename, self.evalue, self.output = notebook, cell, ename, evalue, output
        where = f"code cell {cell}" if cell is not None else "an unknown cell"
        shown = "".join(f"\n    | {line}" for line in source.splitlines()[:12])
        super().__init__(
            f"notebook {notebook} failed in {where}: {ename}: {evalue}{shown}\n"
            f"The executed notebook with the traceback is {output}; earlier notebooks' results are kept "
            "and a re-run resumes from this notebook."
        )


class NotFittedError(HccomicsError, AttributeError):
    """A model was asked to predict before it was fitted."""


class HccomicsWarning(UserWarning):
    """Base class of warnings issued by hccomics."""


class ModalityCoverageWarning(HccomicsWarning):
    """Some patients are present in one modality only."""
