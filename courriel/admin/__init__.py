"""Administration: the `courriel` command (cli/) and, later, the admin HTTP API, over one command layer (commands/)."""
