"""The files the service reads at run time: the public contract and the default program.

The repository keeps them where a user looks for them, `schemas/` and
`config/program.toml` at its top. This package reaches them through two symbolic links
(`schemas` -> `../../schemas`, `program.toml` -> `../../config/program.toml`), so an
editable install reads the repository's own files, and a wheel or sdist carries copies
as package data (`[tool.setuptools.package-data]` in pyproject.toml). Code finds them
only through the functions below, never by a path relative to a module: an installed
package has no repository around it.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _here() -> Path:
    # `files()` of a package installed as files (a wheel, an editable install) is a real
    # directory; the service does not run from a zip.
    return Path(str(files(__name__)))


def schema_dir() -> Path:
    """The public contract's directory (`schemas/`): `pos/`, `projections/`, examples."""
    return _here() / "schemas"


def default_program_file() -> Path:
    """The program file used when `LOYALTY_PROGRAM` names none (`config/program.toml`)."""
    return _here() / "program.toml"
