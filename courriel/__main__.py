"""`python -m courriel …` is the `courriel` command."""

from courriel.admin.cli.main import main

raise SystemExit(main())
