"""A second `courriel serve` of a running server is refused, naming the running one; another
server given the same addresses and ports does not listen there. Every listener of a server with
several workers shares its port (SO_REUSEPORT), so either would otherwise bind without an error
and take part of the connections."""

from __future__ import annotations

import errno
import smtplib
from pathlib import Path

import pytest

from tests.integration.mailserver import MailServer, organization_server, wait_for


@pytest.mark.parametrize("mailserver", ["sqlite"], indirect=True)
def test_a_second_serve_of_a_running_server_is_refused(mailserver: MailServer) -> None:
    assert mailserver.process is not None
    second = mailserver.courriel("serve")
    assert second.returncode == 1, second.stdout + second.stderr
    name = mailserver.config.name
    assert (
        f"error: server {name} is already running on {mailserver.config.data_dir} (pid {mailserver.process.pid})"
        in second.stderr
    )
    assert "is running; roles" not in second.stdout  # it never started its roles
    with smtplib.SMTP(mailserver.host, mailserver.port("frontend"), timeout=30) as smtp:
        assert smtp.noop()[0] == 250  # the first one still serves


def test_another_server_given_the_same_ports_does_not_listen_there(tmp_path: Path) -> None:
    """Two workers each, so both servers share their ports with SO_REUSEPORT: the second one's
    workers find the first one's claim and leave the ports to it."""
    first = organization_server(tmp_path / "first", [], workers=2)
    first.start()
    second = organization_server(tmp_path / "second", [], offset=first.offset, workers=2)
    try:
        assert first.process is not None
        second.start()  # returns at once: the ports listen (the first server's)
        refusals = [
            f"cannot listen on 127.0.0.1:{second.port(name)}: [Errno {errno.EADDRINUSE}] 127.0.0.1:{second.port(name)} "
            f"is served by another Courriel server (pid {first.process.pid}"
            for name in ("frontend", "client", "transport")
        ]
        wait_for(lambda: all(line in second.log_path.read_text() for line in refusals), "the refusals", timeout=30)
        with smtplib.SMTP("127.0.0.1", first.port("frontend"), timeout=30) as smtp:
            assert smtp.noop()[0] == 250
        assert "cannot listen" not in first.log_path.read_text()  # its own workers share the ports
    finally:
        second.stop()
        first.stop()
