"""Everything that happens on a server, split by concern:

- `connection`: the wire — socket, jump host, retries, host-key trust, authentication,
  timeouts, and every raw SFTP request (the only module that touches Paramiko's insides);
  `trust` and `credentials` hold the host-key check and the client's key it applies;
- `atomic`: what is at a path now, and replacing it atomically (temp 0600 → posix-rename);
- `lock`: the per-file remote lock; `backup`: backups and rollback;
- `postcommand`: the post-deploy command; `audit`: the audit line;
- `transaction`: those steps in order for one file under the lock.

It never decides what to write: `deploy.py` does.
"""

from sops_deploy.remote.connection import Connection
from sops_deploy.remote.credentials import Credentials
from sops_deploy.remote.reach import Options
from sops_deploy.remote.trust import Trust, fingerprint, verify_host_key

__all__ = ["Connection", "Credentials", "Options", "Trust", "fingerprint", "verify_host_key"]
