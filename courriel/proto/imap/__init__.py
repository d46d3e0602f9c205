"""The sans-I/O IMAP4rev1/IMAP4rev2 protocol layer (RFC 3501, RFC 9051 and extensions).

Client bytes flow reader.py (framing, literals, limits) → grammar.py (typed commands from
commands.py, with lexer.py, fetchatt.py, searchkeys.py, listing.py, sequence.py); answers are
built with writer.py and respcodes.py. Message analysis for FETCH and SEARCH works on raw bytes:
mime.py (part tree) → envelope.py, bodystructure.py, sections.py, search_text.py. mutf7.py
converts IMAP4rev1 mailbox names. Nothing here does I/O or knows the mailbox store.
"""
