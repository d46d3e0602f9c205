"""Delivery: into local mailbox databases (here) and to other SMTP hosts (send connectors)."""
