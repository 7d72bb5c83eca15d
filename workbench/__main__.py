"""``python -m workbench …`` runs the ``workbench`` command, for an environment whose scripts are not on PATH."""

import sys

from workbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
