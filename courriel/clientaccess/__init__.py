"""The Client Access front end (DESIGN.md §2): stateless services that clients talk to.

- `imap.py`, `imap_login.py`: IMAP4 on 143 (STARTTLS) and 993 (TLS), proxied to the IMAP4 back end;
- `pop3.py`: POP3 on 110 (STLS) and 995 (TLS), proxied to the POP3 back end;
- `proxy.py`: the login on the back end and the byte relay both share; `locator.py`: which
  Mailbox server holds a mailbox.

Never imports the mailbox store or the transport queue (checked by import-linter).
"""
