"""The organization's certificate authority in the directory: made once, read by every server.

Servers authenticate each other with certificates the organization CA issues (security/orgca.py,
the ExchangeServer mechanism of the seed's platform). The first server that needs the CA makes
it; the write transaction serializes servers starting together (store.py), and the loser of that
race reads the winner's CA instead of making a second one.
"""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from courriel.org import schema as t
from courriel.org.store import DirectoryStore
from courriel.security.orgca import new_authority

AUTHORITY_ROW = 1


async def _load(conn: AsyncConnection) -> tuple[bytes, bytes] | None:
    row = (
        await conn.execute(
            select(t.certificate_authority.c.certificate, t.certificate_authority.c.private_key).where(
                t.certificate_authority.c.id == AUTHORITY_ROW
            )
        )
    ).first()
    return None if row is None else (row.certificate.encode("ascii"), row.private_key.encode("ascii"))


class CertificateOps(DirectoryStore):
    async def certificate_authority(self, organization: str) -> tuple[bytes, bytes]:
        """The organization CA (certificate PEM, key PEM), made now if the directory has none."""
        async with self._read() as conn:
            found = await _load(conn)
        if found is not None:
            return found
        cert_pem, key_pem = await asyncio.to_thread(new_authority, organization)
        async with self._write() as conn:  # writers take turns here: re-check under the lock
            found = await _load(conn)
            if found is not None:
                return found
            await conn.execute(
                t.certificate_authority.insert().values(
                    id=AUTHORITY_ROW,
                    certificate=cert_pem.decode("ascii"),
                    private_key=key_pem.decode("ascii"),
                    created=time.time(),
                )
            )
        return cert_pem, key_pem

    async def authority_certificate(self) -> bytes | None:
        """The CA certificate alone (what a peer's certificate must chain to); None before it exists."""
        async with self._read() as conn:
            found = await _load(conn)
        return None if found is None else found[0]
