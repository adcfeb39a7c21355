"""`make demo`: deploy the demo secrets into a throwaway OpenSSH sshd on 127.0.0.1.

Starts sshd (the stand-in homeserver), deploys `secrets/.env.encrypted` with the public
demo age key, shows where the file landed and the key-level summary, deploys again to
show that nothing changes, and stops sshd.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.sshd import make_sshd
from tests.support import REPO, target_flags


def run(args: list[str], env: dict[str, str]) -> int:
    print(f"\n$ sops-deploy {' '.join(args)}", flush=True)
    print("(decrypts secrets/.env.encrypted with sops, connects, compares, writes)", flush=True)
    return subprocess.run(
        [sys.executable, "-m", "sops_deploy", *args], env=env, cwd=REPO, check=False
    ).returncode


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sops-deploy-demo-") as tmp:
        root = Path(tmp)
        print(
            "starting a throwaway OpenSSH sshd on 127.0.0.1 (new host and client keys) …",
            flush=True,
        )
        server = make_sshd(root / "sshd")
        try:
            home = root / "srv" / "app"
            home.mkdir(parents=True)
            known = root / "known_hosts"
            known.write_text(server.known_hosts_line + "\n")
            print(
                f"demo homeserver: OpenSSH sshd on 127.0.0.1:{server.port} "
                f"(host key {server.fingerprint})"
            )
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SOPS_", "GITHUB_"))}
            env["AGE_KEY"] = (REPO / "tests/fixtures/demo-age-key.txt").read_text()
            env["SSH_PRIVATE_KEY"] = server.client_key.read_text()
            target = home / ".env"
            args = [
                "deploy",
                "--file",
                "secrets/.env.encrypted",
                *target_flags(server.host, target, known),
                "--required",
                "DATABASE_URL,SESSION_SECRET",
            ]
            if run(args, env) != 0:
                return 1
            mode = stat.S_IMODE(target.stat().st_mode)
            print(
                f"\nthe .env landed at {server.host}:{target} (mode {mode:04o}, "
                f"{target.stat().st_size} bytes); its keys:"
            )
            for line in target.read_text().splitlines():
                print(f"  {line.split('=', 1)[0]}=…")
            print("\nsecond run: the server already matches, so nothing is written")
            return run(args, env)
        finally:
            server.stop()
            print("\ndemo sshd stopped")


if __name__ == "__main__":
    sys.exit(main())
