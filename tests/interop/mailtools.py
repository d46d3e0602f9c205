"""Files of the third-party mail tools: fetchmail's BSMTP output, getmail's rc file and Maildir."""

from __future__ import annotations

import contextlib
import email
import os
import shutil
import tempfile
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

from tests.interop.conftest import HOST, ProtocolServer


def bsmtp_messages(path: Path) -> list[Message]:
    """The messages of a fetchmail BSMTP file: each between DATA and a line holding one dot."""
    found: list[Message] = []
    text = path.read_text()
    for chunk in text.split("\nDATA\n")[1:]:
        body, _, _ = chunk.partition("\n.\n")
        unstuffed = "\n".join(line[1:] if line.startswith("..") else line for line in body.split("\n"))
        found.append(email.message_from_string(unstuffed))
    return found


@contextlib.contextmanager
def maildir_for_getmail() -> Iterator[tuple[Path, str]]:
    """A Maildir getmail may deliver into, and the [destination] line that says as whom.

    getmail refuses to deliver as root; as root, it delivers as `nobody`, into a directory
    nobody can reach (pytest's own temporary tree is private to root).
    """
    root = Path(tempfile.mkdtemp(prefix="courriel-getmail-"))
    maildir = root / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    user = ""
    if os.geteuid() == 0:
        for path in (root, maildir, *maildir.iterdir()):
            path.chmod(0o777)
        user = "user = nobody\n"
    try:
        yield maildir, user
    finally:
        shutil.rmtree(root)


def getmail_rc(server: ProtocolServer, folder: Path, retriever: str, user: str, destination: str) -> None:
    (folder / "getmailrc").write_text(
        "[retriever]\n"
        f"{retriever}"
        f"server = {HOST}\n"
        f"username = {user}\n"
        f"password = {server.password}\n"
        f"ca_certs = {server.cafile}\n"
        "[destination]\n"
        f"{destination}"
        "[options]\n"
        "delete = true\n"
        "read_all = true\n"
        "received = false\n"
        "delivered_to = false\n"
    )
