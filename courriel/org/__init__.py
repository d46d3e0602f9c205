"""The organization directory (the seed's Active Directory): model, store, cache and change polling.

- `model.py`: the directory's objects (the contract with the transport and the services);
- `directory.py`: `Directory`, the async store (SQLite or PostgreSQL), in parts: `organization.py`,
  `domains.py`, `recipients.py`, `groups.py`, `topology.py`, `connectors.py` over `store.py` and
  `schema.py`;
- `defaults.py`: the seed's default receive connectors; `connector_rules.py`: what connectors must obey;
- `cache.py` / `snapshot.py`: each server's in-memory copy, reloaded when the version counter moves.
"""
