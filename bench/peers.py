"""`make bench-peers`: the same jobs through the tools users would pick instead, side by side.

Every tool runs the same three jobs against the same local sshd instances (bench.py's
setup: 127.0.0.1, a clean login HOME that holds the `.env`), for 1 and 16 hosts:

  changed    deploy a 20-key SOPS file whose content differs from the server's
  unchanged  deploy it again (nothing to write)
  drift      compare the server (which holds the other version) with the file, write nothing

Each is a median of N runs after a warm-up, printed as a ratio to sops-deploy on the same
job in the same run, with the peak RSS of the largest process. Each peer is set up to do
the comparable thing — decrypt with sops, write the `.env` with mode 0600, atomically where
the tool can — and the table says what each does and does not do. A peer that cannot be
installed here is printed as "not available: <why>" (bench/peer_tools.py installs them
into ~/.cache/sops-deploy/peers). Writes the "peers" section of bench/results/<commit>.json.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import peer_tools, store, table
from bench.bench import Bench
from bench.timing import measure, run_timed

KINDS = ("changed", "unchanged", "drift")
TITLES = {"changed": "changed", "unchanged": "unchanged rerun", "drift": "drift check"}

Command = tuple[list[str], dict[str, str], set[int]]  # argv (bash -c if one string), env, ok exits


@dataclass
class Peer:
    """One tool: what it does, and the command for a job (kind, source file, host count)."""

    name: str
    version: str
    does: str
    does_not: str
    command: Callable[[str, Path, int], Command]
    teardown: Callable[[int], None] = lambda _n: None


def job_names(host_counts: list[int]) -> tuple[list[str], dict[str, str]]:
    order = [f"{kind}-{n}" for n in host_counts for kind in KINDS]
    titles = {
        f"{kind}-{n}": f"{TITLES[kind]}, {n} host{'s' if n > 1 else ''}"
        for n in host_counts
        for kind in KINDS
    }
    return order, titles


# --- the peers ---------------------------------------------------------------------------


def sops_deploy(b: Bench) -> Peer:
    def command(kind: str, file: Path, n: int) -> Command:
        argv = b.deploy_argv(file, n, "check" if kind == "drift" else "deploy")
        return argv, b.env, {0, 3}

    return Peer(
        "sops-deploy",
        "this commit",
        "decrypts once (sops), validates and lints, connects with a pinned host key, compares "
        "with the server's file, writes 0600 atomically only when it differs; the check names "
        "the keys that differ.",
        "–",
        command,
    )


def openssh(b: Bench) -> Peer:
    def command(kind: str, file: Path, n: int) -> Command:
        path = "$HOME/.env"
        if kind == "drift":
            remote = f'cmp -s - "{path}"'
        else:
            remote = f'umask 077; cat > "{path}.tmp" && mv "{path}.tmp" "{path}"'
        dec = (
            f"{shlex.quote(b.sops)} decrypt --input-type dotenv --output-type dotenv "
            f"{shlex.quote(str(file))}"
        )
        lines = [f"{dec} | {shlex.join([*b.ssh_argv(j), remote])}" for j in range(n)]
        cmds = b.root / f"peer-openssh-{kind}-{n}.txt"
        cmds.write_text("\0".join(lines))
        xargs = f"xargs -0 -P {n} -I CMD bash --norc -c CMD < {shlex.quote(str(cmds))}"
        return [xargs], b.sops_env, {0, 123}  # 123: some host differs (cmp exit 1)

    return Peer(
        "raw OpenSSH (xargs -P)",
        subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip(),
        "decrypts once per host, writes 0600 atomically (umask, temp file, mv); the drift "
        "check is `cmp` on the server.",
        "no validation; rewrites an unchanged file; the drift check cannot say which keys.",
        command,
    )


ANSIBLE_PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: deploy the .env
      ansible.builtin.copy:
        content: "{{ lookup('community.sops.sops', src, input_type='dotenv',
                             output_type='dotenv', rstrip=false) }}"
        dest: ~/.env
        mode: "0600"
      no_log: true
"""


def ansible(b: Bench, tool: peer_tools.Tool) -> Peer:
    work = b.root / "ansible"
    (work / "cp").mkdir(parents=True, exist_ok=True)
    (work / "home").mkdir(exist_ok=True)
    (work / "deploy.yml").write_text(ANSIBLE_PLAYBOOK)
    ssh_args = (
        f"-F none -o ControlMaster=auto -o ControlPersist=60s "
        f"-o UserKnownHostsFile={b.known_hosts} -o StrictHostKeyChecking=yes"
    )
    env = {
        **b.sops_env,
        **tool.env,
        "HOME": str(work / "home"),
        "PATH": f"{Path(b.sops).parent}:{b.sops_env['PATH']}",
        "ANSIBLE_SSH_ARGS": ssh_args,
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(work / "cp"),
        "ANSIBLE_PRIVATE_KEY_FILE": str(b.client),
        "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
    }

    def inventory(n: int) -> Path:
        inv = work / f"hosts{n}.ini"
        inv.write_text(
            "[all]\n"
            + "".join(
                f"h{j} ansible_host=127.0.0.1 ansible_port={s.port} ansible_user={s.user}\n"
                for j, s in enumerate(b.servers[:n])
            )
        )
        return inv

    def command(kind: str, file: Path, n: int) -> Command:
        argv = [str(tool.bin["ansible-playbook"]), "-i", str(inventory(n)), "-f", str(n)]
        argv += ["-e", f"src={file}", str(work / "deploy.yml")]
        if kind == "drift":
            argv.append("--check")
        return argv, env, {0}

    def teardown(n: int) -> None:
        # ControlPersist masters would serve the next run warm: end them between runs.
        for s in b.servers[:n]:
            subprocess.run(
                [
                    *("ssh", "-F", "none", "-o", f"ControlPath={work}/cp/%C"),
                    *("-p", str(s.port), "-O", "exit", f"{s.user}@127.0.0.1"),
                ],
                capture_output=True,
                check=False,
            )

    return Peer(
        "ansible",
        tool.version,
        "community.sops lookup decrypts (sops, once per host), `copy` compares checksums and "
        "writes 0600 atomically (temp file, rename); `--check` reports drift; OpenSSH with "
        "ControlPersist (ended between runs), -f N forks, pipelining off (the default).",
        "no validation or lint of the .env; `--check` says changed, not which keys.",
        command,
        teardown,
    )


PYINFRA_DEPLOY = """\
import io
import os
import subprocess

from pyinfra import host
from pyinfra.operations import files

plain = subprocess.run(
    [os.environ["BENCH_SOPS"], "decrypt", "--input-type", "dotenv", "--output-type", "dotenv",
     os.environ["BENCH_FILE"]],
    check=True, capture_output=True,
).stdout
files.put(name="deploy the .env", src=io.BytesIO(plain), dest=host.data.dest, mode="600")
"""


def pyinfra(b: Bench, tool: peer_tools.Tool) -> Peer:
    work = b.root / "pyinfra"
    work.mkdir(exist_ok=True)
    (work / "deploy.py").write_text(PYINFRA_DEPLOY)

    def inventory(n: int) -> Path:
        inv = work / f"inventory{n}.py"
        hosts = [
            (
                f"h{j}",
                {
                    "ssh_hostname": "127.0.0.1",
                    "ssh_port": s.port,
                    "ssh_user": s.user,
                    "ssh_key": str(b.client),
                    "ssh_known_hosts_file": str(b.known_hosts),
                    "ssh_strict_host_key_checking": "yes",
                    "dest": b.srv_path(j),
                },
            )
            for j, s in enumerate(b.servers[:n])
        ]
        inv.write_text(f"bench = {hosts!r}\n")
        return inv

    def command(kind: str, file: Path, n: int) -> Command:
        argv = [str(tool.bin["pyinfra"]), "-y", "--parallel", str(n)]
        argv += [*(["--dry"] if kind == "drift" else []), str(inventory(n)), "deploy.py"]
        env = {**b.sops_env, "BENCH_SOPS": b.sops, "BENCH_FILE": str(file)}
        return ["cd " + shlex.quote(str(work)) + " && " + shlex.join(argv)], env, {0}

    return Peer(
        "pyinfra",
        tool.version,
        "the deploy file decrypts with sops (once per host: pyinfra runs it per host), "
        "`files.put` compares the SHA1 and uploads over SFTP, then chmods 600; `--dry` "
        "reports drift; Paramiko.",
        "no validation; writes in place (not atomic; the mode is set after the write).",
        command,
    )


def drone(b: Bench, tool: peer_tools.Tool, name: str) -> Peer:
    """appleboy's drone-scp / drone-ssh: one process per host (paths differ per host here)."""
    binary = str(tool.bin[name])
    dec = f"{shlex.quote(b.sops)} decrypt --input-type dotenv --output-type dotenv"

    def command(kind: str, file: Path, n: int) -> Command:
        lines = []
        for j, s in enumerate(b.servers[:n]):
            base = [binary, "--host", "127.0.0.1", "--port", str(s.port)]
            base += ["--username", s.user, "--key-path", str(b.client)]
            if name == "drone-scp":
                local = b.root / f"drone-scp-{j}" / ".env"
                local.parent.mkdir(mode=0o700, exist_ok=True)
                lines.append(
                    f"umask 077; {dec} {shlex.quote(str(file))} > {shlex.quote(str(local))} && "
                    + shlex.join([*base, "--source", str(local), "--target", str(b.srv_home(j))])
                )
            else:
                script = (
                    'printf %s "$ENV_CONTENT" | cmp -s - ~/.env'
                    if kind == "drift"
                    else 'umask 077; printf %s "$ENV_CONTENT" > ~/.env.tmp && mv ~/.env.tmp ~/.env'
                )
                lines.append(
                    f"ENV_CONTENT=$({dec} {shlex.quote(str(file))}) "
                    + shlex.join([*base, "--envs", "ENV_CONTENT", "--script", script])
                )
        if name == "drone-scp" and kind == "drift":
            lines = ["true"]  # no compare mode
        cmds = b.root / f"peer-{name}-{kind}-{n}.txt"
        cmds.write_text("\0".join(lines))
        xargs = f"xargs -0 -P {n} -I CMD bash --norc -c CMD < {shlex.quote(str(cmds))}"
        return [xargs], b.sops_env, {0, 123}

    if name == "drone-scp":
        does = "sops decrypts to a 0600 local file; drone-scp tars it, copies, untars on each host."
        does_not = "no validation, no host-key check (no --fingerprint here), no compare, no "
        does_not += "drift check (the drift job is empty), not atomic."
    else:
        does = "sops decrypts; drone-ssh runs a shell script that writes it 0600 via temp + mv."
        does_not = "no validation, no host-key check (no --fingerprint here), no compare; "
        does_not += "the secrets pass through the environment and the remote script."
    return Peer(name, tool.version, does, does_not, command)


# --- running ---------------------------------------------------------------------------


def check_written(b: Bench, n: int) -> None:
    """Every host's .env holds the keys, mode 0600: the peer did the job it is timed on."""
    for j in range(n):
        path = Path(b.srv_path(j))
        mode = path.stat().st_mode & 0o777 if path.exists() else None
        if mode != 0o600 or "KEY_00019=" not in path.read_text():
            raise RuntimeError(f"host {j}: the .env is not written as expected (mode {mode})")


def run_peer(b: Bench, peer: Peer, host_counts: list[int], runs: int) -> dict[str, dict]:  # type: ignore[type-arg]
    results: dict[str, dict] = {}  # type: ignore[type-arg]
    small = b.small
    for n in host_counts:
        for kind in KINDS:

            def once(i: int, kind: str = kind, n: int = n) -> tuple[float, int]:
                file = small[i % 2] if kind == "changed" else small[0]
                argv, env, ok = peer.command(kind, file, n)
                try:
                    return run_timed(argv, env, shell=len(argv) == 1, ok=ok)
                finally:
                    peer.teardown(n)

            try:
                # the starting state: the other version (drift), or this one (unchanged)
                argv, env, ok = peer.command("changed", small[1 if kind == "drift" else 0], n)
                run_timed(argv, env, shell=len(argv) == 1, ok=ok)
                peer.teardown(n)
                check_written(b, n)
                t = measure(once, runs)
                results[f"{kind}-{n}"] = {
                    "median": t.median,
                    "runs": t.runs,
                    "max_rss_kib": t.max_rss_kib,
                }
            except RuntimeError as exc:
                results[f"{kind}-{n}"] = {"error": str(exc).splitlines()[-1][:200]}
            print(f"  {peer.name} {kind}-{n}: {results[f'{kind}-{n}']}", file=sys.stderr)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hosts", default="1,16")
    parser.add_argument("--only", help="comma-separated peers to run (default: all)")
    parser.add_argument("--results", default=str(store.RESULTS))
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.hosts.split(",")]
    installed = peer_tools.install_all()
    wanted = None if not args.only else set(args.only.split(","))
    order, titles = job_names(counts)
    tools: dict[str, dict[str, str]] = {}
    results: dict[str, dict] = {}  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory(prefix="sops-deploy-peers-") as tmp:
        b = Bench(Path(tmp), args.runs, counts, big_keys=10)
        try:
            b.setup()
            peers: list[Peer] = [sops_deploy(b), openssh(b)]
            for name, tool in installed.items():
                if isinstance(tool, peer_tools.Missing):
                    tools[name] = {"missing": tool.why}
                elif name == "ansible":
                    peers.append(ansible(b, tool))
                elif name == "pyinfra":
                    peers.append(pyinfra(b, tool))
                else:
                    peers.append(drone(b, tool, name))
            for peer in peers:
                if wanted and peer.name not in wanted and peer.name != "sops-deploy":
                    continue
                tools[peer.name] = {
                    "version": peer.version,
                    "does": peer.does,
                    "does_not": peer.does_not,
                }
                results[peer.name] = run_peer(b, peer, counts, args.runs)
        finally:
            b.stop()
    data = {
        "runs": args.runs,
        "host_counts": counts,
        "job_order": order,
        "job_titles": titles,
        "tools": tools,
        "results": results,
    }
    path = store.save("peers", data, Path(args.results))
    print(table.peers_markdown(data))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
