"""The Client Access HTTP proxy in front of a Mailbox server's HTTP back end, over the network.

CAS1's proxy listens on 127.0.0.3 (443 and 80 plus an offset); MBX1's back end on 127.0.0.2 (444
and 81 plus MBX1's port offset, found through the directory). Both servers hold certificates of
the organization CA (security/orgca.py): the hop is mutual TLS, and that is what the back end
believes the proxy's identity headers on. Checked with curl and httpx, as clients see it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from courriel.clientaccess.http import HttpProxy
from courriel.clientaccess.locator import BackendLocator
from courriel.config.schema import ServerConfig
from courriel.core.ports import Role
from courriel.org.cache import DirectoryCache
from courriel.org.directory import Directory
from courriel.org.snapshot import DirectorySnapshot
from courriel.roles.http import HttpServices
from courriel.security.orgca import OrgCredentials, new_authority
from courriel.security.throttle import LoginThrottle
from courriel.services.http.app import backend_app
from courriel.services.http.listener import HttpListeners
from tests.conftest import require_tool
from tests.integration.protocol_env import (
    BACKEND_HOST,
    FRONTEND_HOST,
    PASSWORD,
    Tls,
    free_offset,
    make_tls,
    open_directory,
)

ALICE = "alice@example.test"
CAS_FQDN = "cas1.example.test"
TIMEOUTS = httpx.Timeout(connect=2.0, read=10.0, write=10.0, pool=2.0)
BIG = bytes(range(256)) * 20_000  # 5 MB


async def download(scope: Scope, receive: Receive, send: Send) -> None:
    """A web application of our own, mounted at /OAB: a large answer in small pieces."""

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(BIG), 65_536):
            yield BIG[start : start + 65_536]

    await StreamingResponse(pieces(), media_type="application/octet-stream")(scope, receive, send)


@dataclass
class LongPoll:
    """A web application of our own, mounted at /mapi: answers only when the client leaves."""

    started: asyncio.Event
    client_left: asyncio.Event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.started.set()
        while (await receive())["type"] != "http.disconnect":
            pass
        self.client_left.set()


def org_credentials(folder: Path) -> tuple[OrgCredentials, OrgCredentials]:
    ca_cert, ca_key = new_authority("Contoso")
    cas = OrgCredentials.ensure(folder / "cas1", ca_cert, ca_key, "CAS1", CAS_FQDN, [FRONTEND_HOST])
    mbx = OrgCredentials.ensure(folder / "mbx1", ca_cert, ca_key, "MBX1", "mbx1.example.test", [BACKEND_HOST])
    return cas, mbx


@dataclass
class Env:
    directory: Directory
    tls: Tls
    proxy: HttpProxy
    front: HttpListeners
    back: HttpListeners
    poll: LongPoll
    cas: OrgCredentials
    mbx: OrgCredentials
    https: str
    http: str
    backend_https: str
    backend_http: str
    backend_port: int

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=self.tls.client, timeout=20.0, trust_env=False, **kwargs)  # type: ignore[arg-type]

    async def start_backend(self) -> None:
        await self.back.listen(BACKEND_HOST, self.backend_port, self.mbx.accept_servers(self.tls.server))
        await self.back.listen(BACKEND_HOST, self.backend_port - 444 + 81, None)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    back_offset = free_offset(BACKEND_HOST, (81, 444))
    front_offset = free_offset(FRONTEND_HOST, (80, 443))
    directory = await open_directory(tmp_path, back_offset)
    cache = DirectoryCache(directory)
    await cache.load()
    tls = make_tls(tmp_path / "tls")
    cas, mbx = org_credentials(tmp_path / "org")

    def snapshot() -> DirectorySnapshot:
        return cache.snapshot

    proxy = HttpProxy(
        server="CAS1",
        snapshot=snapshot,
        throttle=LoginThrottle(max_failures=3, base_delay=0.0, max_delay=0.0),
        locator=BackendLocator(snapshot, "CAS1", [FRONTEND_HOST]),
        backend_tls=cas.client_context(),
        https_port=443 + front_offset,
        public_host=CAS_FQDN,
        timeouts=TIMEOUTS,
    )
    front = HttpListeners("http-proxy", proxy, keep_alive=1)
    await front.listen(FRONTEND_HOST, 443 + front_offset, tls.server)
    await front.listen(FRONTEND_HOST, 80 + front_offset, None)
    poll = LongPoll(asyncio.Event(), asyncio.Event())
    applications = {"OAB": download, "mapi": poll}
    back = HttpListeners("http-backend", backend_app("MBX1", applications), peer_server=mbx.peer_server)
    env = Env(
        directory,
        tls,
        proxy,
        front,
        back,
        poll,
        cas,
        mbx,
        https=f"https://{FRONTEND_HOST}:{443 + front_offset}",
        http=f"http://{FRONTEND_HOST}:{80 + front_offset}",
        backend_https=f"https://{BACKEND_HOST}:{444 + back_offset}",
        backend_http=f"http://{BACKEND_HOST}:{81 + back_offset}",
        backend_port=444 + back_offset,
    )
    await env.start_backend()
    try:
        yield env
    finally:
        await front.stop(grace=1.0)
        await proxy.aclose()
        await back.stop(grace=1.0)
        await directory.close()


async def curl(*args: str) -> tuple[int, dict[str, str], bytes]:
    """curl's status, response headers (last value of each, lower-cased names) and body."""
    process = await asyncio.create_subprocess_exec(
        require_tool("curl"), "-sS", "--max-time", "20", "-D", "-", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


# ---- authentication -----------------------------------------------------------------------------


async def test_no_credentials_get_401_with_a_basic_challenge(env: Env) -> None:
    status, headers, _ = await curl("--cacert", str(env.tls.cafile), f"{env.https}/owa/")
    assert status == 401
    assert headers["www-authenticate"] == f'Basic realm="{CAS_FQDN}", charset="UTF-8"'


async def test_wrong_password_gets_401(env: Env) -> None:
    status, headers, _ = await curl(
        "--cacert", str(env.tls.cafile), "-u", f"{ALICE}:wrong", f"{env.https}/EWS/Exchange.asmx"
    )
    assert status == 401
    assert headers["www-authenticate"].startswith("Basic ")


async def test_failures_are_throttled_even_for_the_right_password_afterwards(env: Env) -> None:
    async with env.client() as client:
        for _ in range(3):
            wrong = await client.get(f"{env.https}/EWS/", auth=(ALICE, "wrong"))
            assert wrong.status_code == 401
        right = await client.get(f"{env.https}/EWS/", auth=(ALICE, PASSWORD))
    assert right.status_code == 401


# ---- proxying -------------------------------------------------------------------------------------


async def test_curl_through_the_proxy_reaches_the_users_mailbox_server(env: Env) -> None:
    status, _, body = await curl(
        "--cacert", str(env.tls.cafile), "-u", f"{ALICE}:{PASSWORD}", f"{env.https}/owa/inbox?view=list&n=2"
    )
    assert status == 200
    answer = json.loads(body)
    alice = (await env.directory.snapshot()).recipient(ALICE)
    assert alice is not None
    assert answer == {
        "application": "owa",
        "server": "MBX1",
        "front_end": "CAS1",
        "user": ALICE,
        "mailbox_guid": alice.guid,
        "method": "GET",
        "path": "/owa/inbox",
        "query": "view=list&n=2",
        "body_bytes": 0,
        "body_sha256": hashlib.sha256(b"").hexdigest(),
    }


async def test_every_application_path_is_proxied_whatever_its_case(env: Env) -> None:
    paths = {
        "/ecp/": "ecp",
        "/ews/exchange.asmx": "EWS",
        "/Microsoft-Server-ActiveSync/": "Microsoft-Server-ActiveSync",
        "/autodiscover/autodiscover.xml": "Autodiscover",
        "/rpc/rpcproxy.dll": "rpc",
    }  # /mapi is LongPoll here, /OAB `download`
    async with env.client() as client:
        for path, application in paths.items():
            response = await client.get(env.https + path, auth=("alice", PASSWORD))  # bare local part
            assert response.status_code == 200, path
            assert response.json()["application"] == application
            assert response.json()["user"] == ALICE


async def test_a_request_body_streams_to_the_back_end(env: Env) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(BIG), 100_000):
            yield BIG[start : start + 100_000]

    async with env.client() as client:
        response = await client.post(
            f"{env.https}/Microsoft-Server-ActiveSync?Cmd=Sync", content=chunks(), auth=(ALICE, PASSWORD)
        )
    assert response.status_code == 200
    assert response.json()["method"] == "POST"
    assert response.json()["body_bytes"] == len(BIG)
    assert response.json()["body_sha256"] == hashlib.sha256(BIG).hexdigest()


async def test_autodiscover_post_with_curl(env: Env, tmp_path: Path) -> None:
    request = tmp_path / "autodiscover.xml"
    request.write_bytes(
        b"<Autodiscover><Request><EMailAddress>alice@example.test</EMailAddress></Request></Autodiscover>"
    )
    status, _, body = await curl(
        "--cacert", str(env.tls.cafile), "-u", f"{ALICE}:{PASSWORD}", "-H", "Content-Type: text/xml",
        "--data-binary", f"@{request}", f"{env.https}/Autodiscover/Autodiscover.xml",
    )  # fmt: skip
    assert status == 200
    assert json.loads(body)["body_sha256"] == hashlib.sha256(request.read_bytes()).hexdigest()


async def test_a_large_answer_streams_back(env: Env) -> None:
    async with (
        env.client() as client,
        client.stream("GET", f"{env.https}/oab/full.lzx", auth=(ALICE, PASSWORD)) as response,
    ):
        assert response.status_code == 200
        received = b"".join([chunk async for chunk in response.aiter_bytes()])
    assert received == BIG


async def test_a_client_cannot_claim_another_identity(env: Env) -> None:
    async with env.client() as client:
        response = await client.get(
            f"{env.https}/EWS/",
            auth=(ALICE, PASSWORD),
            headers={"X-Courriel-Authenticated-User": "bob@example.test", "X-Courriel-Mailbox-Guid": "x"},
        )
    assert response.status_code == 200
    assert response.json()["user"] == ALICE
    assert response.json()["mailbox_guid"] != "x"


async def test_a_client_that_leaves_ends_the_back_end_request(env: Env) -> None:
    async with env.client() as client:
        request = asyncio.create_task(
            client.post(f"{env.https}/mapi/emsmdb/?mailboxId=x", auth=(ALICE, PASSWORD))
        )
        await asyncio.wait_for(env.poll.started.wait(), 10.0)
        request.cancel()  # the client hangs up while the back end is still waiting
        with pytest.raises(asyncio.CancelledError):
            await request
    await asyncio.wait_for(env.poll.client_left.wait(), 10.0)


# ---- the back end down ------------------------------------------------------------------------------


async def test_back_end_down_gives_503_with_retry_after(env: Env) -> None:
    await env.back.stop(grace=1.0)
    status, headers, _ = await curl(
        "--cacert", str(env.tls.cafile), "-u", f"{ALICE}:{PASSWORD}", f"{env.https}/owa/"
    )
    assert status == 503
    assert int(headers["retry-after"]) > 0
    await env.start_backend()  # and it comes back
    status, _, body = await curl(
        "--cacert", str(env.tls.cafile), "-u", f"{ALICE}:{PASSWORD}", f"{env.https}/owa/"
    )
    assert status == 200 and json.loads(body)["server"] == "MBX1"


async def test_a_back_end_that_never_answers_gives_503_not_a_hang(env: Env) -> None:
    await env.back.stop(grace=1.0)
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accepts the connection, never speaks TLS

    mute = await asyncio.start_server(silent, BACKEND_HOST, env.backend_port)
    try:
        async with env.client() as client:
            response = await client.get(f"{env.https}/EWS/", auth=(ALICE, PASSWORD))
        assert response.status_code == 503
        assert response.headers["retry-after"]
    finally:
        mute.close()
        for writer in held:
            writer.close()


# ---- port 80 -----------------------------------------------------------------------------------------


async def test_port_80_redirects_owa_and_autodiscover_to_https(env: Env) -> None:
    async with env.client() as client:
        owa = await client.get(f"{env.http}/OWA/?ae=Folder")
        root = await client.get(f"{env.http}/")
        auto = await client.get(f"{env.http}/autodiscover/autodiscover.xml")
    https = f"https://{CAS_FQDN}:{env.https.rsplit(':', 1)[1]}"
    assert (owa.status_code, owa.headers["location"]) == (302, f"{https}/owa/?ae=Folder")
    assert (root.status_code, root.headers["location"]) == (302, f"{https}/owa/")
    assert (auto.status_code, auto.headers["location"]) == (302, f"{https}/Autodiscover/autodiscover.xml")


async def test_port_80_refuses_the_other_applications_even_with_credentials(env: Env) -> None:
    for path in ("/EWS/Exchange.asmx", "/ecp/", "/Microsoft-Server-ActiveSync", "/OAB/", "/mapi/", "/rpc/"):
        status, headers, body = await curl("-u", f"{ALICE}:{PASSWORD}", env.http + path)
        assert status == 403, path
        assert b"SSL" in body and "www-authenticate" not in headers
    status, _, _ = await curl(f"{env.http}/nothing-here")
    assert status == 404


async def test_published_calendars_are_anonymous_on_80_and_443(env: Env) -> None:
    async with env.client() as client:
        plain = await client.get(f"{env.http}/owa/calendar/{ALICE}/a1b2/calendar.ics")
        secure = await client.get(f"{env.https}/owa/calendar/{ALICE}/a1b2/calendar.html")
        unknown = await client.get(f"{env.http}/owa/calendar/nobody@example.test/a1b2/calendar.ics")
    for response in (plain, secure):
        assert response.status_code == 200
        assert response.json()["user"] is None and response.json()["server"] == "MBX1"
    assert plain.json()["front_end"] is None  # through 81: no organization TLS, nobody vouched
    assert secure.json()["front_end"] == "CAS1"
    assert unknown.status_code == 404


async def test_a_connection_that_never_sends_a_request_is_closed(env: Env) -> None:
    reader, writer = await asyncio.open_connection(FRONTEND_HOST, int(env.http.rsplit(":", 1)[1]))
    try:
        assert await asyncio.wait_for(reader.read(), 10.0) == b""
    finally:
        writer.close()


# ---- the back end on its own -------------------------------------------------------------------------


async def test_back_end_refuses_requests_that_do_not_come_from_an_organization_server(env: Env) -> None:
    claim = {"X-Courriel-Authenticated-User": ALICE}
    async with httpx.AsyncClient(verify=False, timeout=10.0, trust_env=False) as client:
        direct_tls = await client.get(f"{env.backend_https}/EWS/", headers=claim)
        direct_plain = await client.get(f"{env.backend_http}/owa/", headers=claim)
    assert direct_tls.status_code == 403
    assert direct_plain.status_code == 403
    status, _, _ = await curl(
        "-k", "-H", f"X-Courriel-Authenticated-User: {ALICE}", f"{env.backend_https}/owa/"
    )
    assert status == 403


async def test_back_end_refuses_a_certificate_from_another_organization(env: Env, tmp_path: Path) -> None:
    other, _ = org_credentials(tmp_path / "other")
    async with httpx.AsyncClient(verify=other.client_context(), timeout=10.0, trust_env=False) as client:
        with pytest.raises(httpx.TransportError):
            await client.get(f"{env.backend_https}/EWS/", headers={"X-Courriel-Authenticated-User": ALICE})


async def test_an_organization_server_without_a_user_is_refused(env: Env) -> None:
    async with httpx.AsyncClient(verify=env.cas.client_context(), timeout=10.0, trust_env=False) as client:
        response = await client.get(f"{env.backend_https}/EWS/")
    assert response.status_code == 403


# ---- the role, all in one ----------------------------------------------------------------------------


async def test_http_role_all_in_one(tmp_path: Path) -> None:
    offset = free_offset("127.0.0.1", (80, 81, 443, 444))
    directory = await open_directory(tmp_path, offset)
    cache = DirectoryCache(directory)
    await cache.load()
    tls = make_tls(tmp_path / "tls")
    ca_cert, ca_key = new_authority("Contoso")
    org = OrgCredentials.ensure(tmp_path / "org", ca_cert, ca_key, "MBX1", "mbx1.example.test", ["127.0.0.1"])
    config = ServerConfig(
        path=tmp_path / "courriel.toml", name="MBX1", fqdn="mbx1.example.test",
        roles=frozenset({Role.CLIENT_ACCESS, Role.MAILBOX}), site="Default-First-Site-Name",
        listen=("127.0.0.1",), port_offset=offset, data_dir=tmp_path, workers=1,
        directory_url=f"sqlite:///{tmp_path / 'directory.db'}", tls_certificate=tmp_path / "tls" / "server.crt",
        tls_key=tmp_path / "tls" / "server.key", dns_nameservers=(), dns_timeout=5.0, log_level="info", log_file=None,
    )  # fmt: skip
    services = HttpServices(config, cache, tls.server, LoginThrottle(base_delay=0.0, max_delay=0.0), org=org)
    await services.start()
    try:
        assert {(name, port - offset) for name, _, port in services.bound()} == {
            ("http-proxy", 443), ("http-proxy", 80), ("http-backend", 444), ("http-backend", 81),
        }  # fmt: skip
        async with httpx.AsyncClient(verify=tls.client, timeout=20.0, trust_env=False) as client:
            response = await client.get(
                f"https://127.0.0.1:{443 + offset}/EWS/Exchange.asmx", auth=(ALICE, PASSWORD)
            )
            redirect = await client.get(f"http://127.0.0.1:{80 + offset}/owa")
        assert response.status_code == 200
        assert (response.json()["server"], response.json()["front_end"]) == ("MBX1", "MBX1")
        assert redirect.headers["location"] == f"https://mbx1.example.test:{443 + offset}/owa"
    finally:
        await services.stop(grace=1.0)
        await directory.close()
