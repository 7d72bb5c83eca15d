"""``python -m workbench.sample --incident NAME --out DIR``: the ``sample`` command without the main CLI."""

from workbench.sample.cli import main

raise SystemExit(main())
