"""Which SSH keys are offered, in OpenSSH's order, with a real ssh-agent and a real sshd;
and the SSH key as sops's age identity, handed over through a pipe, never a file."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from sops_deploy.errors import RemoteError, UsageError
from sops_deploy.remote import identities
from sops_deploy.sops import sshage
from tests.sshagent import Agent
from tests.sshd import Sshd, keygen
from tests.support import AgeIdentity


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    running = Agent(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    return ssh.parent


def blob(pub: Path) -> str:
    return pub.read_text().split()[1]


def offered(found: identities.Identities) -> list[tuple[str, str]]:
    return [(i.source, i.key.get_base64()) for i in found.keys]


def test_agent_first_then_default_files_in_openssh_order(agent: Agent, home: Path) -> None:
    """Agent keys come first, then the default files in the order `ssh -G` lists them."""
    keygen(home / "agent_key")
    agent.add(home / "agent_key")
    for name in ("id_ed25519", "id_rsa", "id_ecdsa"):
        keygen(home / ".ssh" / name, name.removeprefix("id_"))
    listed = subprocess.run(
        ["ssh", "-G", "-F", "/dev/null", "x"], capture_output=True, text=True, check=True
    ).stdout
    order = [ln.split("/")[-1] for ln in listed.splitlines() if ln.startswith("identityfile ")]
    assert tuple(order) == identities.DEFAULT_FILES
    with identities.gather(None, env=agent.env, home=home) as found:
        expected = [("ssh-agent", blob(home / "agent_key.pub"))] + [
            (f"~/.ssh/{n}", blob(home / ".ssh" / f"{n}.pub"))
            for n in order
            if (home / ".ssh" / n).exists()
        ]
        assert offered(found) == expected


def test_explicit_key_is_the_only_one_offered(agent: Agent, home: Path) -> None:
    keygen(home / ".ssh" / "id_ed25519")
    agent.add(home / ".ssh" / "id_ed25519")
    explicit = paramiko.Ed25519Key.from_private_key_file(str(home / ".ssh" / "id_ed25519"))
    found = identities.gather(
        identities.Identity("SSH_PRIVATE_KEY", explicit), env=agent.env, home=home
    )
    assert [i.source for i in found.keys] == ["SSH_PRIVATE_KEY"]
    assert found.agent is None


def test_file_already_in_the_agent_is_not_offered_twice(agent: Agent, home: Path) -> None:
    keygen(home / ".ssh" / "id_ed25519")
    agent.add(home / ".ssh" / "id_ed25519")
    with identities.gather(None, env=agent.env, home=home) as found:
        assert [i.source for i in found.keys] == ["ssh-agent"]


def test_identities_only_offers_only_the_configured_key(agent: Agent, home: Path) -> None:
    """IdentitiesOnly yes + IdentityFile: other agent keys stay unoffered."""
    for name in ("a", "b"):
        keygen(home / name)
        agent.add(home / name)
    with identities.gather(
        None, env=agent.env, home=home, identity_files=[str(home / "b")], identities_only=True
    ) as found:
        assert offered(found) == [("ssh-agent", blob(home / "b.pub"))]


def test_identity_agent_none_disables_the_agent(agent: Agent, home: Path) -> None:
    keygen(home / "a")
    agent.add(home / "a")
    found = identities.gather(None, env=agent.env, home=home, identity_agent="none")
    assert found.keys == []
    error = identities.nothing_to_offer(found, ci=True)
    assert "SSH_PRIVATE_KEY" in error.hint


def test_encrypted_default_file_needs_the_passphrase(home: Path) -> None:
    """A passphrase-protected ~/.ssh/id_ed25519 is left out with a note, or opened with
    SSH_PRIVATE_KEY_PASSPHRASE."""
    keygen(home / ".ssh" / "id_ed25519", passphrase="correct horse battery")
    without = identities.gather(None, env={}, home=home)
    assert without.keys == []
    assert "ssh-add ~/.ssh/id_ed25519" in without.skipped[0]
    with_pw = identities.gather(None, env={}, home=home, passphrase="correct horse battery")
    assert offered(with_pw) == [("~/.ssh/id_ed25519", blob(home / ".ssh" / "id_ed25519.pub"))]


def test_unreachable_agent_is_noted_not_fatal(home: Path) -> None:
    keygen(home / ".ssh" / "id_ed25519")
    found = identities.gather(None, env={"SSH_AUTH_SOCK": str(home / "gone.sock")}, home=home)
    assert [i.source for i in found.keys] == ["~/.ssh/id_ed25519"]
    assert "not reachable" in found.skipped[0]


def _transport(server: Sshd) -> paramiko.Transport:
    transport = paramiko.Transport(socket.create_connection(("127.0.0.1", server.port), 10))
    transport.start_client(timeout=10)
    return transport


def test_agent_key_logs_in_after_a_refused_one(agent: Agent, home: Path, sshd_server: Sshd) -> None:
    """The server refuses the first agent key and accepts the second: we are logged in,
    signing through the real agent."""
    keygen(home / "stranger")
    agent.add(home / "stranger")
    agent.add(sshd_server.client_key)
    transport = _transport(sshd_server)
    try:
        with identities.gather(None, env=agent.env, home=home) as found:
            used = identities.authenticate(transport, sshd_server.user, found, "test")
            assert used.key.get_base64() == blob(sshd_server.client_key.with_suffix(".pub"))
            assert transport.is_authenticated()
    finally:
        transport.close()


def test_no_accepted_key_names_every_fingerprint_tried(home: Path, sshd_server: Sshd) -> None:
    keygen(home / ".ssh" / "id_ed25519")
    found = identities.gather(None, env={}, home=home)
    transport = _transport(sshd_server)
    try:
        with pytest.raises(RemoteError) as info:
            identities.authenticate(transport, sshd_server.user, found, "test")
    finally:
        transport.close()
    shown = subprocess.run(
        ["ssh-keygen", "-lf", str(home / ".ssh" / "id_ed25519.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[1]
    assert f"~/.ssh/id_ed25519 (ssh-ed25519 key {shown})" in info.value.message


# --- the SSH key as sops's age identity ----------------------------------------------

STRACE = ["strace", "-f", "-qq", "-s", "256", "-xx", "-e", "trace=openat,open,creat,write"]


def sops_dotenv(sops_bin: str, verb: str) -> list[str]:
    return [sops_bin, verb, "--input-type", "dotenv", "--output-type", "dotenv"]


def _encrypt_for(sops_bin: str, recipient: str, tmp_path: Path, text: str) -> Path:
    plain = tmp_path / "plain.env"
    plain.write_text(text)
    out = subprocess.run(
        [*sops_dotenv(sops_bin, "encrypt"), "--age", recipient, str(plain)],
        capture_output=True,
        check=True,
    ).stdout
    plain.unlink()
    enc = tmp_path / "secrets.env.encrypted"
    enc.write_bytes(out)
    return enc


def _decrypt(
    sops_bin: str,
    enc: Path,
    identity: sshage.SshIdentity,
    env: dict[str, str],
    *,
    memfd: bool | None = None,
    reads: int = 1,
) -> str:
    with sshage.pipe_identity(identity, env, memfd=memfd, reads=reads) as (child, fds):
        named = child.get(sshage.SSH_KEY_FILE_ENV) or child[sshage.SSH_KEY_CMD_ENV]
        assert re.search(r"/dev/fd/\d+$", named)
        proc = subprocess.run(
            [*sops_dotenv(sops_bin, "decrypt"), str(enc)],
            env=child,
            pass_fds=fds,
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


@pytest.mark.parametrize("passphrase", [None, "pass phrase 42"], ids=["plain", "passphrase"])
def test_sops_decrypts_with_the_ssh_key_through_a_pipe(
    sops_bin: str, tmp_path: Path, passphrase: str | None
) -> None:
    """A file encrypted for `ssh-ed25519 …` decrypts with the SSH private key (also one
    with a passphrase, which sops itself could not prompt for)."""
    key = tmp_path / "deploy_ed25519"
    public = keygen(key, passphrase=passphrase or "")
    enc = _encrypt_for(sops_bin, sshage.normalize(public), tmp_path, "DB_PASSWORD=ssh-only-9f2\n")
    identity = sshage.identity_from(key.read_text(), passphrase)
    assert identity is not None
    assert identity.decrypts([public])
    home = tmp_path / "emptyhome"  # no ~/.ssh/id_ed25519 for sops to find by itself
    home.mkdir()
    env = {"PATH": os.defpath, "HOME": str(home)}
    assert _decrypt(sops_bin, enc, identity, env) == "DB_PASSWORD=ssh-only-9f2\n"


@pytest.mark.parametrize("memfd", [True, False], ids=["memfd", "pipe-and-dd"])
def test_a_file_with_several_recipients_decrypts_with_the_ssh_key(
    sops_bin: str, tmp_path: Path, age_id: AgeIdentity, memfd: bool
) -> None:
    """sops loads its identities once per recipient (here an age key first, then the SSH
    key): both hand-overs (sealed memfd on Linux; pipe + dd elsewhere) serve every load."""
    key = tmp_path / "deploy_ed25519"
    public = keygen(key)
    enc = _encrypt_for(
        sops_bin, f"{age_id.public},{sshage.normalize(public)}", tmp_path, "MULTI=two-recips-8\n"
    )
    identity = sshage.identity_from(key.read_text(), None)
    assert identity is not None
    home = tmp_path / "emptyhome"
    home.mkdir()
    env = {"PATH": os.defpath, "HOME": str(home)}
    assert _decrypt(sops_bin, enc, identity, env, memfd=memfd, reads=3) == "MULTI=two-recips-8\n"


def test_the_ssh_key_never_touches_a_file(sops_bin: str, tmp_path: Path) -> None:
    """Traced with the real strace: sops opens the identity only as the inherited
    descriptor (/dev/fd/N, a sealed memfd with no path), no process writes the key's bytes
    anywhere, and no file under the test's directories holds them."""
    key = tmp_path / "deploy_ed25519"
    public = keygen(key)
    enc = _encrypt_for(sops_bin, sshage.normalize(public), tmp_path, "TRACE_ME=via-pipe-77\n")
    identity = sshage.identity_from(key.read_text(), None)
    assert identity is not None
    key.unlink()  # from here on the key is only in this process's memory
    home = tmp_path / "h"
    home.mkdir()
    log = tmp_path / "strace.log"
    with sshage.pipe_identity(identity, {"PATH": os.defpath, "HOME": str(home)}) as (env, fds):
        proc = subprocess.run(
            [*STRACE, "-o", str(log), *sops_dotenv(sops_bin, "decrypt"), str(enc)],
            env=env,
            pass_fds=fds,
            capture_output=True,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    assert proc.returncode == 0, proc.stderr.decode()[-500:]
    assert proc.stdout == b"TRACE_ME=via-pipe-77\n"
    trace = log.read_text()
    fd = env[sshage.SSH_KEY_FILE_ENV].rsplit("/", 1)[1]
    assert re.search(rf'openat\(AT_FDCWD, "/dev/fd/{fd}"', _unhex(trace))
    body = identity.private.split(b"\n")[1]  # first base64 line of the private key
    assert body.hex() not in trace.replace("\\x", "")
    assert "ssh" not in "".join(re.findall(r"O_CREAT[^\n]*", _unhex(trace)))
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and body in p.read_bytes()]


def _unhex(trace: str) -> str:
    return re.sub(
        r"(?:\\x[0-9a-f]{2})+",
        lambda m: bytes.fromhex(m[0].replace("\\x", "")).decode("latin-1"),
        trace,
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        pytest.param("age1abc", "not an SSH public key", id="age-recipient"),
        pytest.param("ecdsa-sha2-nistp256 AAAA x", "not ecdsa-sha2-nistp256", id="ecdsa"),
    ],
)
def test_ssh_recipient_must_be_ed25519_or_rsa(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        sshage.normalize(line)


def test_wrong_passphrase_is_named_not_shown(tmp_path: Path) -> None:
    keygen(tmp_path / "k", passphrase="right-one-123")
    with pytest.raises(UsageError, match="SSH_PRIVATE_KEY_PASSPHRASE does not open it") as info:
        sshage.identity_from((tmp_path / "k").read_text(), "wrong-one-456")
    assert "wrong-one-456" not in info.value.message + info.value.hint


def test_the_ssh_key_goes_to_sops_only_for_a_file_encrypted_for_it(
    tmp_path: Path, age_id: AgeIdentity
) -> None:
    """An SSH key is handed to sops only when the file lists that very key."""
    from sops_deploy.sops.runner import AgeKeySource

    mine, other = tmp_path / "mine", tmp_path / "other"
    mine_pub, other_pub = keygen(mine), keygen(other)
    source = AgeKeySource(ssh_key=mine.read_text())
    assert source.ssh_identity((age_id.public,)) is None
    assert source.ssh_identity((sshage.normalize(other_pub),)) is None
    found = source.ssh_identity((age_id.public, sshage.normalize(mine_pub)))
    assert found is not None
    assert found.public_line == sshage.normalize(mine_pub)
