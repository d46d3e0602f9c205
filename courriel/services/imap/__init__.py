"""The IMAP4 back-end service of the Mailbox role (DESIGN.md §2): sockets around the sans-I/O
session engine (courriel.proto.imap.session), over the mailbox databases mounted on this server.

- server.py: `ImapService`, the listeners (1143 STARTTLS, 1993 TLS), Set-ImapSettings per connection;
- connection.py: one connection, the session's `Wire`; deflate.py: its COMPRESS=DEFLATE (RFC 4978);
- login.py: the `Authenticator` over the directory (throttle, ImapEnabled, MaxConnectionsPerUser);
- account.py: the `Account` over `MailboxDatabase`, and \\Recent bookkeeping;
- feed.py: other worker processes' changes, polled once per folder for the whole process.
"""

from courriel.services.imap.server import ImapService

__all__ = ["ImapService"]
