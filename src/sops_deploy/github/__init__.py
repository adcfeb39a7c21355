"""GitHub Actions secrets and variables from the same decrypted file (`github-sync`).

The package is split by concern:

- `client.py`  the REST wire: one authenticated urllib opener, pagination, and every
               HTTP failure turned into a `GitHubError` that says what to fix;
- `seal.py`    the libsodium sealed box GitHub requires for a secret value;
- `names.py`   which GitHub names are valid, and which keys are public (variables);
- `state.py`   the sync state kept in a repository variable: keyed HMACs, never values;
- `plan.py`    the sync as data: facts in (file, GitHub, state), operations out;
- `sync.py`    reading GitHub, applying a plan, writing the new state;
- `command.py` the `github-sync` command: options, decrypt, plan, report.
"""
