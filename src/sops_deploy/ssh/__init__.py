"""OpenSSH's client-side meanings, read as OpenSSH reads them.

- `knownhosts`: known_hosts (hashed names, patterns, markers) and key-type preference;
- `sshconfig`: `~/.ssh/config` (Host/Match blocks, Include, first value wins);
- `route`: a `--host` routed through ssh_config (HostName, User, Port, one ProxyJump hop).

It never writes files and never connects: `remote/` does.
"""
