"""A server's organization credentials at start: the CA from the directory, our certificate on disk.

The certificate (`data_dir/tls/org-server.{crt,key}`) names this server, its FQDN and the
addresses it listens on; it is issued again when it is missing, from another CA (a new
organization directory), for other names, or near its end (security/orgca.py).
"""

from __future__ import annotations

import asyncio

from courriel.config.schema import ServerConfig
from courriel.org.directory import Directory
from courriel.security.orgca import OrgCredentials


async def server_credentials(directory: Directory, config: ServerConfig) -> OrgCredentials:
    organization = await directory.organization_name() or config.name
    ca_cert, ca_key = await directory.certificate_authority(organization)
    return await asyncio.to_thread(
        OrgCredentials.ensure,
        config.data_dir / "tls",
        ca_cert,
        ca_key,
        config.name,
        config.fqdn,
        ("localhost", *config.addresses),
    )
