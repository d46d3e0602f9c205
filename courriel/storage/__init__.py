"""SQL engines (SQLite, PostgreSQL) behind one code path, migrations, the blob store and group commit."""
