"""``python -m shared`` is the same as the ``nsg-guard`` command."""

from shared.cli import main

raise SystemExit(main())
