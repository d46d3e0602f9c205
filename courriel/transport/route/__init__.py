"""Routing: which next hop a resolved recipient goes to (a mailbox database, a send connector, nowhere yet)."""
