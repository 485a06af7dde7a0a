"""``python -m maskbench``: the command line (:mod:`maskbench.cli`)."""

import sys

from maskbench.cli import main

sys.exit(main())
