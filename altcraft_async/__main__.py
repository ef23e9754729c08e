"""``python -m altcraft_async``: the command line (same as the ``altcraft-async`` script)."""

from .cli import main

raise SystemExit(main())
