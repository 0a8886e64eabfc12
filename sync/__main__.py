"""`python -m sync` is `cohort-sync`."""

from sync.cli import main

raise SystemExit(main())
