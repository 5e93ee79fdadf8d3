"""The book's chapters: one module per chapter, on top of the chapter-agnostic library.

Each chapter module holds the chapter's parameter schema (``Params``, an
:class:`ntknb.schema.Params`) and its experiment, table and verdict code as functions of the
parameters; the notebook ``notebooks/NN_name.py`` only calls them. Imports go one way: chapters
import the library (:mod:`ntknb.training`, :mod:`ntknb.kernels`, ...), never the reverse, and
no chapter imports another.

:func:`schema_for` maps a notebook name to its schema, which ``ntknb run`` (and ``--dry-run``)
uses through :func:`check_parameters` before papermill starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

__all__ = ["CHAPTERS", "schema_for", "check_parameters"]

#: notebook name -> chapter module (under ``ntknb.chapters``); chapters without a module yet
#: are checked by their notebook only.
CHAPTERS = {
    "00_ntk_basics": "ch00_ntk_basics",
    "00a_robustness_toy_models": "ch00a_robustness_toy_models",
    "00b_kip_distillation": "ch00b_kip_distillation",
    "01_transfer_attacks": "ch01_transfer_attacks",
    "02_eigenfeatures": "ch02_eigenfeatures",
    "03_robust_only_kernels": "ch03_robust_only_kernels",
    "04_at_kernel_dynamics": "ch04_kernel_dynamics",
    "05_bn_buffers": "ch05_bn_buffers",
    "06_catastrophic_overfitting": "ch06_overfitting",
}


def schema_for(notebook: str):
    """The ``Params`` schema of the notebook named ``notebook`` (its file stem), or ``None``."""
    module = CHAPTERS.get(notebook)
    if module is None:
        return None
    return importlib.import_module(f"{__name__}.{module}").Params


def check_parameters(notebook: str, values: Mapping[str, Any]):
    """The checked parameters object of ``notebook`` built from ``values`` (every parameter),
    or ``None`` if the notebook has no schema. Raises ``ValueError`` naming the parameter and its
    allowed values."""
    schema = schema_for(notebook)
    return None if schema is None else schema.from_values(values)
