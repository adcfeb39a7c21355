"""The bad-input corpus: malformed configuration, keys, files and paths each fail with the
right exit code and a message that names what is wrong and how to fix it; no secret is
printed and nothing is written to the server."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from sops_deploy.cli import main
from tests.sshd import Sshd, keygen
from tests.support import AgeIdentity, CliResult, assert_no_secrets

Cli = Callable[..., CliResult]
PLAIN = "DB_PASSWORD=corpus-secret-value-1\nAPI_KEY=corpus-api-key-2\n"
PASSPHRASE = "correct-horse-battery-1"


@dataclass
class Ctx:
    """Everything a case needs to build its arguments and environment."""

    enc: Path  # a valid encrypted file
    tmp: Path
    remote: str  # the remote .env path
    target: list[str]  # --host/--remote-path/--known-hosts pointing at the test sshd
    ssh_key: str
    locked_key: str  # an ed25519 key protected by PASSPHRASE
    age: AgeIdentity

    def with_path(self, path: str) -> list[str]:
        args = list(self.target)
        args[args.index("--remote-path") + 1] = path
        return args

    def file(self, name: str, data: bytes) -> str:
        p = self.tmp / name
        p.write_bytes(data)
        return str(p)


Args = Callable[[Ctx], list[str]]
Env = Callable[[Ctx], dict[str, str]]


def deploy(*extra: str) -> Args:
    return lambda c: ["deploy", "--file", str(c.enc), *c.target, *extra]


def known_hosts(make: Callable[[str, str], str]) -> Args:
    """A deploy whose --known-hosts file is `make(server's line, its key part)`."""

    def args(c: Ctx) -> list[str]:
        argv = list(c.target)
        at = argv.index("--known-hosts") + 1
        line = Path(argv[at]).read_text().strip()
        argv[at] = c.file("known_hosts_case", make(line, line.split(" ", 1)[1]).encode())
        return ["deploy", "--file", str(c.enc), *argv]

    return args


def no_env(_c: Ctx) -> dict[str, str]:
    return {}


CASES = [
    # --- configuration ---
    pytest.param(
        lambda c: ["deploy", "--file", str(c.enc), "--host", "root@127.0.0.1:99999",
                   "--remote-path", c.remote],
        no_env, 2, ("port 99999 is out of range", "usually 22"), id="port-out-of-range",
    ),
    pytest.param(deploy("--port", "ssh"), no_env, 2, ("--port", "invalid int value"),
                 id="port-not-a-number"),
    pytest.param(
        lambda c: ["deploy", "--file", str(c.enc), "--host", "root@@server", "--remote-path",
                   c.remote],
        no_env, 2, ("is not [user@]host[:port]", "deploy@example.com:2222"), id="host-double-at",
    ),
    pytest.param(
        lambda c: ["deploy", "--file", str(c.enc), "--host", "web_01!", "--remote-path",
                   c.remote],
        no_env, 2, ("'web_01!' is not [user@]host[:port]",), id="host-with-bang",
    ),
    pytest.param(
        lambda c: ["deploy", "--file", str(c.enc), "--host", "my server", "--remote-path",
                   c.remote],
        no_env, 2, ("--host 'my server' is not [user@]host[:port]",), id="host-with-space",
    ),
    pytest.param(deploy("--jump-host", "bastion:port"), no_env, 2,
                 ("--jump-host 'bastion:port' is not [user@]host[:port]",), id="bad-jump-host"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc), "--remote-path", c.remote], no_env,
                 2, ("no host given", "--host"), id="no-host"),
    pytest.param(deploy("--file-mode", "0644"), no_env, 2,
                 ("readable by every user", "use 0600"), id="mode-world-readable"),
    pytest.param(deploy("--file-mode", "rw-------"), no_env, 2,
                 ("not an octal mode like 0600",), id="mode-not-octal"),
    pytest.param(deploy("--file-mode", "0200"), no_env, 2,
                 ("owner unable to read", "use 0600"), id="mode-owner-cannot-read"),
    pytest.param(deploy("--format", "yaml"), no_env, 2,
                 ("--format 'yaml' is not one of", "compose"), id="unknown-format"),
    pytest.param(deploy("--format", "raw", "--required", "DB_PASSWORD"), no_env, 2,
                 ("--format raw cannot check required keys", "drop --required"),
                 id="raw-with-required"),
    pytest.param(lambda c: [*deploy("--format", "raw")(c), "--file", str(c.enc)], no_env, 2,
                 ("--format raw deploys exactly one file", "single --file"), id="raw-two-files"),
    pytest.param(deploy("--timeout", "0"), no_env, 2, ("must be positive", "--timeout 20"),
                 id="timeout-zero"),
    pytest.param(deploy("--parallel", "0"), no_env, 2, ("at least 1", "--parallel 32"),
                 id="parallel-zero"),
    pytest.param(deploy("--backup", "-1"), no_env, 2, ("--backup -1 must not be negative",),
                 id="backup-negative"),
    pytest.param(deploy("--lock-timeout", "-5"), no_env, 2,
                 ("--lock-timeout -5 must not be negative",), id="lock-timeout-negative"),
    pytest.param(deploy("--timeout", "nan"), no_env, 2,
                 ("--timeout nan is not a finite number", "--timeout 20"), id="timeout-nan"),
    pytest.param(deploy("--timeout", "inf"), no_env, 2,
                 ("--timeout inf is not a finite number", "--timeout 20"), id="timeout-inf"),
    pytest.param(deploy(), lambda c: {"SOPS_DEPLOY_TIMEOUT": "-inf"}, 2,
                 ("SOPS_DEPLOY_TIMEOUT=-inf is not a finite number", "SOPS_DEPLOY_TIMEOUT=20"),
                 id="env-timeout-minus-inf"),
    pytest.param(deploy("--lock-timeout", "nan"), no_env, 2,
                 ("--lock-timeout nan is not a finite number", "--lock-timeout 60"),
                 id="lock-timeout-nan"),
    pytest.param(deploy("--post-command-timeout", "nan"), no_env, 2,
                 ("--post-command-timeout nan is not a finite number",),
                 id="post-command-timeout-nan"),
    pytest.param(deploy("--port", "0"), no_env, 2, ("--port 0 must be at least 1", "--port 22"),
                 id="port-zero"),
    pytest.param(deploy("--port", "70000"), no_env, 2,
                 ("--port 70000 must be at most 65535", "--port 22"), id="port-70000"),
    pytest.param(deploy("--retries", "-1"), no_env, 2, ("--retries -1 must not be negative",),
                 id="retries-negative"),
    pytest.param(deploy(), lambda c: {"SOPS_DEPLOY_FAIL_FAST": "maybe"}, 2,
                 ("SOPS_DEPLOY_FAIL_FAST", "is not a boolean", "true or false"),
                 id="env-bool-garbage"),
    pytest.param(deploy(), lambda c: {"SOPS_DEPLOY_TIMEOUT": "soon"}, 2,
                 ("SOPS_DEPLOY_TIMEOUT", "is not a number"), id="env-number-garbage"),
    # --- keys ---
    pytest.param(deploy(), lambda c: {"AGE_KEY": "not-an-age-key-at-all"}, 5,
                 ("AGE_KEY contains no age identity", "AGE-SECRET-KEY-1", "set AGE_KEY"),
                 id="age-key-garbage"),
    pytest.param(deploy(), lambda c: {"AGE_KEY": c.age.public}, 5,
                 ("it looks like a public key was pasted", "set AGE_KEY to a private key"),
                 id="age-public-key-as-private"),
    pytest.param(deploy(), lambda c: {"SSH_PRIVATE_KEY": (c.tmp / "id_locked.pub").read_text()},
                 1, ("holds a public key, not a private key", "not the .pub"),
                 id="ssh-public-key-as-private"),
    pytest.param(deploy(), lambda c: {"SSH_PRIVATE_KEY": "\n".join(c.ssh_key.splitlines()[1:])},
                 1, ("has no -----BEGIN", "whole private key"), id="ssh-key-no-begin-line"),
    pytest.param(deploy(), lambda c: {"SSH_PRIVATE_KEY": "\n".join(c.ssh_key.splitlines()[:3])},
                 1, ("has no -----END", "truncated?"), id="ssh-key-truncated"),
    pytest.param(
        deploy(),
        lambda c: {"SSH_PRIVATE_KEY": "\n".join(c.ssh_key.splitlines()[:2]
                                                + c.ssh_key.splitlines()[-1:])},
        1, ("not a readable ed25519, ecdsa or rsa private key", "whole private key"),
        id="ssh-key-body-cut",
    ),
    pytest.param(deploy(), lambda c: {"SSH_PRIVATE_KEY": c.locked_key}, 1,
                 ("is encrypted with a passphrase", "SSH_PRIVATE_KEY_PASSPHRASE"),
                 id="ssh-passphrase-needed"),
    pytest.param(deploy(), lambda c: {"SSH_PRIVATE_KEY": c.locked_key,
                                      "SSH_PRIVATE_KEY_PASSPHRASE": "wrong-passphrase-9"},
                 1, ("wrong passphrase", "check SSH_PRIVATE_KEY_PASSPHRASE"),
                 id="ssh-wrong-passphrase"),
    pytest.param(deploy("--ssh-key-file", "/nonexistent/id_ed25519"),
                 lambda c: {"SSH_PRIVATE_KEY": ""}, 1,
                 ("--ssh-key-file /nonexistent/id_ed25519", "readable private key file"),
                 id="ssh-key-file-missing"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc), *c.target[:4], "--known-hosts",
                            "/nonexistent/known_hosts"],
                 no_env, 1, ("/nonexistent/known_hosts: no such file", "known_hosts"),
                 id="known-hosts-missing"),
    pytest.param(known_hosts(lambda line, key: f"@revoked * {key}\n{line}\n"), no_env, 1,
                 ("is revoked (@revoked in", "line 1", "host-key-fingerprint"),
                 id="known-hosts-revoked"),
    pytest.param(known_hosts(lambda line, key: f"@cert-authority * {key}\n"), no_env, 1,
                 ("unknown host key", "--host-key-fingerprint"),
                 id="known-hosts-cert-authority-only"),
    pytest.param(known_hosts(lambda line, key: "garbage line\n"), no_env, 1,
                 ("known_hosts_case line 1: unknown key type; line skipped", "unknown host key"),
                 id="known-hosts-garbage-line"),
    # --- files ---
    pytest.param(lambda c: ["deploy", "--file", str(c.tmp / "nope.env"), *c.target], no_env, 2,
                 ("nope.env: no such file", "pass the encrypted file with --file"),
                 id="file-missing"),
    pytest.param(lambda c: ["deploy", "--file", c.file("empty.env", b""), *c.target], no_env, 5,
                 ("the file is empty", "sops"), id="file-empty"),
    pytest.param(lambda c: ["deploy", "--file", c.file("plain.env", b"PLAIN_KEY=plain-value\n"),
                            *c.target],
                 no_env, 5, ("not encrypted", "refusing to deploy plaintext"), id="file-not-sops"),
    pytest.param(
        lambda c: ["deploy", "--file", c.file("half.env",
                                              c.enc.read_bytes()[: len(c.enc.read_bytes()) // 2]),
                   *c.target],
        no_env, 5, ("half.env: this file is not encrypted by sops", "sops encrypt"),
        id="file-truncated-sops",
    ),
    pytest.param(lambda c: ["deploy", "--file", c.file("garbage.bin", bytes(range(256)) * 8),
                            *c.target],
                 no_env, 5, ("garbage.bin: this file is not encrypted", "sops encrypt"),
                 id="file-binary-garbage"),
    pytest.param(lambda c: ["deploy", "--file", str(c.tmp), *c.target], no_env, 2,
                 ("is a directory, not an encrypted file", "pass a file path"),
                 id="file-is-directory"),
    # --- paths ---
    pytest.param(lambda c: ["deploy", "--file", str(c.enc), *c.with_path("srv/.env")], no_env, 2,
                 ("must be absolute or start with ~/", "/srv/app/.env"), id="path-relative"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc), *c.with_path(c.remote + "\x00x")],
                 no_env, 2, ("NUL or newline", "plain path"), id="path-nul"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc), *c.with_path(c.remote + "\nx")],
                 no_env, 2, ("NUL or newline", "plain path"), id="path-newline"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc), *c.with_path(c.remote + "/")],
                 no_env, 2, ("names a directory", "name the file itself"),
                 id="path-trailing-slash"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc), *c.with_path(c.remote + "/sub")],
                 no_env, 1, ("is a directory", "point --remote-path at the file itself"),
                 id="path-is-directory"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc), *c.with_path(c.remote + "/link")],
                 no_env, 1, ("is a symlink; refusing to replace it", "--follow-symlinks"),
                 id="path-symlink"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc),
                            *c.with_path(c.remote + "/missing/.env")],
                 no_env, 1, ("does not exist", "mkdir -p"), id="path-parent-missing"),
    # --- the server side (issue 13): links and odd files where the tool writes or reads ---
    pytest.param(lambda c: ["deploy", "--file", str(c.enc),
                            *c.with_path(c.remote + "/logln/.env")],
                 no_env, 1, ("logln/.env.deploy.log is a symlink; refusing to open the audit log",
                             "remove it"), id="audit-log-symlink"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc),
                            *c.with_path(c.remote + "/lockln/.env")],
                 no_env, 1, ("lockln/.env.sops-deploy.lock is a symlink; refusing to open the lock",
                             "remove it"), id="lock-symlink"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc), *c.with_path(c.remote + "/fifo/.env")],
                 no_env, 1, ("fifo/.env is not a regular file (a FIFO)", "remove or rename it"),
                 id="target-fifo"),
    pytest.param(lambda c: ["deploy", "--file", str(c.enc),
                            *c.with_path(c.remote + "/$(touch x) y/.env")],
                 no_env, 1, ("does not exist", "(`mkdir -p '"), id="mkdir-hint-quoted"),
]  # fmt: skip


def snapshot(root: Path) -> dict[str, bytes | str]:
    """Every entry under `root` with its bytes (or link target), to prove nothing changed."""
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        if p.is_symlink():
            out[key] = "-> " + str(p.readlink())
        elif p.is_file():
            out[key] = p.read_bytes()
        else:
            out[key] = "dir"
    return out


@pytest.mark.parametrize(("args", "env", "code", "expected"), CASES)
def test_bad_input_is_refused_clearly_and_writes_nothing(
    args: Args,
    env: Env,
    code: int,
    expected: tuple[str, ...],
    cli: Cli,
    encrypt: Callable[..., Path],
    target_args: list[str],
    remote_dir: Path,
    tmp_path: Path,
    sshd_server: Sshd,
    age_id: AgeIdentity,
    base_env: dict[str, str],
    secret_values: set[str],
) -> None:
    """A malformed input exits with its code, names the problem and the fix, leaks nothing."""
    (remote_dir / "sub").mkdir()
    (remote_dir / "real.env").write_text("EXISTING=existing-value-1\n")
    (remote_dir / "link").symlink_to(remote_dir / "real.env")
    victim = tmp_path / "victim.conf"
    victim.write_text('{"user": "VICTIM-FIELD"}\n')
    for name, planted in (("logln", ".env.deploy.log"), ("lockln", ".env.sops-deploy.lock")):
        (remote_dir / name).mkdir()
        (remote_dir / name / planted).symlink_to(victim)
    (remote_dir / "fifo").mkdir()
    os.mkfifo(remote_dir / "fifo" / ".env")
    keygen(tmp_path / "id_locked", passphrase=PASSPHRASE)
    locked = (tmp_path / "id_locked").read_text()
    secret_values.update({locked.strip(), PASSPHRASE, "existing-value-1"})
    ctx = Ctx(
        enc=encrypt(PLAIN),
        tmp=tmp_path,
        remote=str(remote_dir),
        target=[*target_args[:2], "--remote-path", str(remote_dir / ".env"), *target_args[4:]],
        ssh_key=sshd_server.client_key.read_text(),
        locked_key=locked,
        age=age_id,
    )
    before = snapshot(remote_dir)
    argv, extra_env = args(ctx), env(ctx)
    if any("\x00" in a for a in argv):
        # The OS cannot pass NUL inside argv to a subprocess; run main() in-process instead.
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            returncode = main(argv, {**base_env, **extra_env})
        result = CliResult(returncode, out.getvalue(), err.getvalue())
        assert_no_secrets(result.output, secret_values)
    else:
        result = cli(*argv, env=extra_env)
    assert result.returncode == code, result.output
    for part in expected:
        assert part in result.stderr, f"{part!r} not in:\n{result.stderr}"
    assert "fix" in result.stderr or "usage:" in result.stderr
    assert snapshot(remote_dir) == before, "something was written on the server"
    assert victim.read_text() == '{"user": "VICTIM-FIELD"}\n'
    assert "VICTIM-FIELD" not in result.output
