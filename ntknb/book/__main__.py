"""``python -m ntknb.book ARGS``: ``ntknb book ARGS`` (build, check-sync, sync, execute, lab, prepare-ci,
check-html; :mod:`ntknb.book.cli`), the form ``scripts/dev``, CI and the README use."""

import sys

from ntknb.book.cli import main

sys.exit(main(["book", *sys.argv[1:]]))
