"""A second `courriel serve` of a running server is refused, naming the running one: every
listener shares its port (SO_REUSEPORT), so it would otherwise bind without an error, take half
the connections and scan the same queue."""

from __future__ import annotations

import smtplib

import pytest

from tests.integration.mailserver import MailServer


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
