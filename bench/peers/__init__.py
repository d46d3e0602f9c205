"""The peers Courriel is measured against, each behind the harness's `System` interface.

`aiosmtpd_fsync` (baseline (a), with its server script), `postfix_dovecot` (baseline (b), a
private Postfix + Dovecot instance), `single_process` (aiosmtpd-fsync and the smtp-sink
ceiling as one-process servers) and `system` (the interface and process handling).
"""
