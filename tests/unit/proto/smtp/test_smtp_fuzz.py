"""Property tests: no input makes the engine raise, and every command line gets an answer."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from courriel.core.replies import QUEUED, RECIPIENT_OK, SENDER_OK, TEMP_FAILURE, Reply
from courriel.proto.smtp import Action, Close, Send, SessionSettings, SmtpSession, StartTLS, Trace
from courriel.proto.smtp.state import Mode

from .conftest import parse_replies

# Mostly positive answers, so that sessions get deep into transactions before a 421 ends them.
ANSWERS = [None, SENDER_OK, RECIPIENT_OK, QUEUED] * 4 + [
    TEMP_FAILURE,
    Reply(550, "5.7.1", "No"),
    Reply(421, "4.3.2", "Bye"),
]
VERBS = [
    "EHLO",
    "HELO",
    "MAIL",
    "RCPT",
    "DATA",
    "BDAT",
    "RSET",
    "NOOP",
    "QUIT",
    "VRFY",
    "HELP",
    "STARTTLS",
    "AUTH",
    "EXPN",
    "XYZ",
]
ARGS = st.sampled_from(
    [
        "",
        "x",
        "FROM:<a@b.example>",
        "FROM:<>",
        "TO:<c@d.example>",
        "TO:<Postmaster>",
        "FROM:<a@b.example> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=x+2B",
        "TO:<c@d.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;c@d.example",
        "3",
        "0 LAST",
        "5 LAST",
        "PLAIN",
        "LOGIN",
        "PLAIN " + base64.b64encode(b"\0u\0p").decode(),
        "*",
    ]
)
STRUCTURED = st.builds(lambda v, a: f"{v} {a}".strip().encode(), st.sampled_from(VERBS), ARGS)
LINE = st.one_of(
    STRUCTURED,
    STRUCTURED,
    STRUCTURED,
    st.builds(lambda v, a: f"{v} {a}".encode(), st.sampled_from(VERBS), st.text(max_size=40)),
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),
)


class Harness:
    def __init__(self, answers: st.DataObject, **overrides: object) -> None:
        self.answers = answers
        config = SessionSettings(
            "mx.example.com",
            banner="hi",
            tls_available=True,
            auth_requires_tls=False,
            max_protocol_errors=0,
            max_message_size=200,
            max_text_line=50,
            **overrides,  # type: ignore[arg-type]
        )
        self.session = SmtpSession(config, peer=("192.0.2.1", 1), trace=True)
        self.closed = False
        self.run(self.session.start())
        self.run(self.session.feed(b"EHLO client\r\n"))

    def run(self, actions: list[Action]) -> bytes:
        out = b""
        while actions:
            action = actions.pop(0)
            assert not self.closed
            if isinstance(action, Send):
                out += action.data
            elif isinstance(action, Close):
                self.closed = True
            elif isinstance(action, StartTLS):
                actions += self.session.tls_started()
            elif isinstance(action, Trace):
                assert isinstance(action.line, str)
            else:
                actions += self.session.resolve(self.answers.draw(st.sampled_from(ANSWERS)))
        parse_replies(out)  # well-formed replies only
        return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=20), st.data())
def test_random_bytes_never_raise(chunks: list[bytes], data: st.DataObject) -> None:
    h = Harness(data)
    for chunk in chunks:
        h.run(h.session.feed(chunk))
    h.run(h.session.eof())
    assert h.closed and h.session.closed


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=25), st.data())
def test_every_command_line_is_answered(lines: list[bytes], data: st.DataObject) -> None:
    h = Harness(data)
    for line in lines:
        if h.closed:
            break
        mode = h.session._mode
        out = h.run(h.session.feed(line + b"\r\n"))
        if mode in (Mode.COMMAND, Mode.SASL):
            # A BDAT chunk (or a DATA body) is answered once its octets have been read.
            assert out or h.closed or h.session._mode in (Mode.DATA, Mode.CHUNK), (line, mode)
    h.run(h.session.eof())
    assert h.closed


@settings(max_examples=100, deadline=None)
@given(st.lists(LINE, max_size=25), st.data())
def test_strict_limits_never_raise(lines: list[bytes], data: st.DataObject) -> None:
    h = Harness(data, max_recipients=1, max_logon_failures=1, chunking=False, dsn=False, smtputf8=False)
    h.run(h.session.feed(b"\r\n".join(lines) + b"\r\n"))
    h.run(h.session.eof())
    assert h.closed
