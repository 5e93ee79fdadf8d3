"""Where the checkout's files are: one rule for the repository, ``notebooks/``, its data and claims.

The book's notebooks, their recorded runs (``notebooks/data/``), the claim register
(``notebooks/claims/``) and the bibliography (``book/references.bib``) live in the repository
checkout, not in the package. :data:`NOTEBOOKS` is the first of

1. ``notebooks/`` beside the package: the package runs from its checkout (an editable install,
   ``scripts/dev``, ``PYTHONPATH=checkout``);
2. the working directory itself: a wheel install running a chapter, whose kernel works in the
   notebook's folder (``ntknb run``, nbval, the book);
3. ``notebooks/`` of the working directory: a wheel install run from the checkout's root;

that holds the claim register ``claims/`` (every checkout has it); when none does, the first.
The other paths follow from it. They are fixed when ``ntknb.paths`` is first imported.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["find_notebooks", "NOTEBOOKS", "REPO_ROOT", "DATA", "CLAIMS", "BIB"]

#: The folder holding the ``ntknb`` package (the checkout, when the package runs from it).
_PACKAGE_PARENT = Path(__file__).resolve().parents[1]


def find_notebooks(cwd: str | os.PathLike | None = None) -> Path:
    """The checkout's ``notebooks/`` folder by the rule above, the working directory being
    ``cwd`` (default: the process's)."""
    here = Path.cwd() if cwd is None else Path(cwd)
    candidates = [_PACKAGE_PARENT / "notebooks", here, here / "notebooks"]
    return next((c for c in candidates if (c / "claims").is_dir()), candidates[0])


#: The checkout's ``notebooks/``: the paired notebooks and their presets.
NOTEBOOKS = find_notebooks()
#: The repository checkout (``_config.yml``, ``book/``, ``notebooks/``, ...).
REPO_ROOT = NOTEBOOKS.parent
#: Recorded runs a chapter reads (settings searches, seed checks, GPU records).
DATA = NOTEBOOKS / "data"
#: The claim register: one YAML file per chapter (:func:`ntknb.claims.load_register`).
CLAIMS = NOTEBOOKS / "claims"
#: The book's bibliography: the bib keys a claim's ``source`` names.
BIB = REPO_ROOT / "book" / "references.bib"
