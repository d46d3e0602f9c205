"""Courriel: a mail platform on the Exchange 2013 architecture (Client Access, Mailbox, Edge Transport)."""

__version__ = "0.1.0"
