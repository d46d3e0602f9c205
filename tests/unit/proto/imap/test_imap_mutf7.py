"""Modified UTF-7 (RFC 3501 §5.1.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from courriel.proto.imap.mutf7 import Mutf7Error, decode, encode, is_valid

VECTORS = [
    ("~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e"),  # RFC 3501 §5.1.3
    ("&-", "&"),
    ("Entw&APw-rfe", "Entw\u00fcrfe"),
    ("&Jjo-!", "\u263a!"),
    ("Hi Mom -&Jjo--!", "Hi Mom -\u263a-!"),
    ("&2D3eAA-", "\U0001f600"),
    ("INBOX", "INBOX"),
    ("A&-B", "A&B"),
]


@pytest.mark.parametrize(("wire", "text"), VECTORS)
def test_vectors(wire: str, text: str) -> None:
    assert decode(wire) == text
    assert encode(text) == wire


@pytest.mark.parametrize(
    "bad",
    [
        "&U,BTFw-&ZeVnLIqe-",  # two adjacent runs: not the shortest form (RFC 3501 §5.1.3)
        "&AGE-",  # encodes printable "a"
        "&U,BTF",  # unterminated
        "a&b",  # bare ampersand
        "&Jjp-",  # non-zero padding bits
        "caf\u00e9",  # 8-bit in the wire form
        "&2D0-",  # lone surrogate
        "&A-",  # truncated base64
    ],
)
def test_invalid(bad: str) -> None:
    with pytest.raises(Mutf7Error):
        decode(bad)
    assert not is_valid(bad)


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=40))
def test_round_trip(text: str) -> None:
    wire = encode(text)
    assert wire.isascii()
    assert decode(wire) == text
