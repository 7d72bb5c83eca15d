"""``python -m workbench …`` runs the ``workbench`` command, for an environment whose scripts are not on PATH."""

import sys

from workbench.cli import main

sys.exit(main())
