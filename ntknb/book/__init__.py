"""The tooling wing: everything that runs, builds and checks the book, above the chapters.

* :mod:`ntknb.book.params` — a notebook's parameters cell, strict YAML overrides, the checks
  before a run (``ntknb params``, ``ntknb run --dry-run``);
* :mod:`ntknb.book.run` — a run into an output folder with papermill (``ntknb run``);
* :mod:`ntknb.book.sync` — the paired ``.py`` / ``.ipynb`` notebooks, executing them in place,
  the CI presets;
* :mod:`ntknb.book.pages` — the generated pages ("Results at a glance", "Execution status");
* :mod:`ntknb.book.build` — the book build and its Sphinx extension, JupyterLab;
* :mod:`ntknb.book.html` — checks of the built HTML;
* :mod:`ntknb.book.gpu` — the GPU runbook (``scripts/gpu_runs``);
* :mod:`ntknb.book.cli` — the one ``ntknb`` command; ``python -m ntknb.book`` is ``ntknb book``;
* ``static/`` — the book's CSS and JavaScript.

Imports go one way: this wing may import the chapters (through :mod:`ntknb.chapters`) and the
library; nothing outside it imports it. The package is the Sphinx extension named in
``_config.yml`` (``sphinx.extra_extensions: [ntknb.book]``): :func:`setup` is
:func:`ntknb.book.build.setup`.
"""

from ntknb.book.build import setup

__all__ = ["setup"]
