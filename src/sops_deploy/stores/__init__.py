"""Secret stores as sync targets and as read-only deploy sources.

`vault-sync` writes the selected keys into one KV v2 secret of Vault or OpenBao
(`vault.py`, plain HTTP), `aws-sync` into one JSON secret of AWS Secrets Manager
(`aws.py`, boto3 from the `[aws]` extra). Both share the selection rules of github-sync,
the compare-then-write plan and the report (`sync.py`); `command.py` is their entry,
`source.py` reads `vault://MOUNT/PATH` and `aws-sm://NAME` as the source of a deploy.
Nothing here is imported by deploy or validate unless a store is named.
"""
