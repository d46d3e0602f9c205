"""Pure values shared by every layer: addresses, errors, ids, the ports table. No I/O, imports nothing of ours."""
