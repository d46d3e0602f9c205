"""The POP3 back-end service of the Mailbox role (RFC 1939, RFC 2449, RFC 2595, RFC 5034).

- `service.py`: `Pop3Service`, listening on 1110 (STLS) and 1995 (TLS), over the mailbox store;
- `maildrop.py`: the Inbox as a maildrop and the maildrop lock;
- `connection.py`: the engine (courriel.proto.pop3) on a socket, also used by the front end;
- `logins.py`: directory logins and connection limits, shared with the Client Access front
  ends (courriel.clientaccess); the sockets are courriel.services.stream's.

Nothing is imported here, so that the front ends can use `connection` and `logins` without
loading the mailbox store (DESIGN.md §5: clientaccess never imports mailbox).
"""
