"""Services: the operations the CLI (and later the daemon and web app) call."""
