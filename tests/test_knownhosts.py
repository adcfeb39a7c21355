"""known_hosts read as OpenSSH 9 reads it: our accept/refuse decision and the key type we
negotiate match real `ssh -o StrictHostKeyChecking=yes` against a real sshd with ed25519,
ecdsa and rsa host keys, on the same files; bad lines are skipped with their line number."""

from __future__ import annotations

import base64
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from sops_deploy.errors import HostKeyError
from sops_deploy.inputs.settings import HostSpec
from sops_deploy.remote import Connection, Credentials, Options, Trust
from sops_deploy.ssh import knownhosts as kh
from sops_deploy.ssh.knownhosts import Decision
from tests.sshd import Sshd, keygen, make_sshd

ACCEPT, UNKNOWN, CHANGED, REVOKED = (
    Decision.ACCEPT,
    Decision.UNKNOWN,
    Decision.CHANGED,
    Decision.REVOKED,
)
KINDS = ("ed25519", "ecdsa", "rsa")
ALG = {"ed25519": "ssh-ed25519", "ecdsa": "ecdsa-sha2-nistp256", "rsa": "rsa-sha2-512"}


@dataclass
class Keys:
    """Public key parts ("type base64") of the server's host keys and of keys it lacks."""

    server: dict[str, str]
    wrong: dict[str, str]
    port: int

    @property
    def name(self) -> str:
        return f"[127.0.0.1]:{self.port}"


@pytest.fixture(scope="module")
def multi_key_sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Sshd, Keys]]:
    root = tmp_path_factory.mktemp("kh-sshd")
    extra = ""
    for kind in ("ecdsa", "rsa"):
        keygen(root / f"ssh_host_{kind}_key", kind)
        extra += f"HostKey {root}/ssh_host_{kind}_key\n"
    server = make_sshd(root, extra_config=extra)
    try:
        wrong = {}
        for kind in KINDS:
            keygen(root / f"wrong_{kind}", kind)
            wrong[kind] = _pub(root / f"wrong_{kind}.pub")
        ours = {k: _pub(root / f"ssh_host_{k}_key.pub") for k in KINDS}
        yield server, Keys(ours, wrong, server.port)
    finally:
        server.stop()


def _pub(path: Path) -> str:
    return " ".join(path.read_text().split()[:2])


# Each case: known_hosts text from the keys, a host key algorithm to force on both sides
# (None: each side orders key types itself from known_hosts), and OpenSSH's decision.
Text = Callable[[Keys], str]
DIFF_CASES = [
    pytest.param(lambda k: f"{k.name} {k.server['ed25519']}\n", None, ACCEPT, id="plain-match"),
    pytest.param(lambda k: f"127.0.0.1 {k.server['ed25519']}\n", None, ACCEPT,
                 id="bare-name-same-key"),
    pytest.param(lambda k: f"127.0.0.1 {k.wrong['ed25519']}\n", None, UNKNOWN,
                 id="bare-name-wrong-key"),
    pytest.param(lambda k: f"127.0.0.1 {k.server['ecdsa']}\n", None, UNKNOWN,
                 id="bare-name-other-type"),
    pytest.param(lambda k: f"@revoked 127.0.0.1 {k.server['ed25519']}\n"
                           f"127.0.0.1 {k.server['ed25519']}\n", None, REVOKED,
                 id="bare-name-revoked"),
    pytest.param(lambda k: f"{k.name} {k.wrong['ed25519']}\n127.0.0.1 {k.server['ed25519']}\n",
                 None, CHANGED, id="port-name-wins-over-bare"),
    pytest.param(lambda k: f"{k.name} {k.wrong['ed25519']}\n", None, CHANGED, id="wrong-key"),
    pytest.param(lambda k: "", None, UNKNOWN, id="empty-file"),
    pytest.param(lambda k: f"HASH {k.name} {k.server['ed25519']}\n", None, ACCEPT, id="hashed"),
    pytest.param(lambda k: f"HASH 127.0.0.1 {k.server['ed25519']}\n", None, ACCEPT,
                 id="hashed-bare-name"),
    pytest.param(lambda k: f"HASH {k.name} {k.wrong['ed25519']}\n", None, CHANGED,
                 id="hashed-wrong-key"),
    pytest.param(lambda k: f"[127.0.0.*]:* {k.server['ed25519']}\n", None, ACCEPT,
                 id="wildcard-star"),
    pytest.param(lambda k: f"[127.0.?.1]:{k.port} {k.server['ed25519']}\n", None, ACCEPT,
                 id="wildcard-question"),
    pytest.param(lambda k: f"[127.0.0.??]:* {k.server['ed25519']}\n", None, UNKNOWN,
                 id="wildcard-no-match"),
    pytest.param(lambda k: f"otherhost,{k.name},x.example {k.server['ed25519']}\n", None,
                 ACCEPT, id="comma-list"),
    pytest.param(lambda k: f"[127.0.0.*]:*,!{k.name} {k.server['ed25519']}\n", None, UNKNOWN,
                 id="negation-excludes"),
    pytest.param(lambda k: f"!{k.name},* {k.wrong['ed25519']}\n{k.name} {k.server['ed25519']}\n",
                 None, ACCEPT, id="negated-line-is-not-a-change"),
    pytest.param(lambda k: f"!otherhost,* {k.server['ed25519']}\n", None, ACCEPT,
                 id="negation-of-another-host"),
    pytest.param(lambda k: f"@revoked * {k.server['ed25519']}\n{k.name} {k.server['ed25519']}\n",
                 None, REVOKED, id="revoked-star"),
    pytest.param(lambda k: f"{k.name} {k.server['ed25519']}\n@revoked {k.name} "
                           f"{k.server['ed25519']}\n", None, REVOKED, id="revoked-after-accept"),
    pytest.param(lambda k: f"@revoked otherhost {k.server['ed25519']}\n"
                           f"{k.name} {k.server['ed25519']}\n", None, ACCEPT,
                 id="revoked-for-another-host"),
    pytest.param(lambda k: f"@revoked * {k.wrong['ed25519']}\n{k.name} {k.server['ed25519']}\n",
                 None, ACCEPT, id="revoked-other-key"),
    pytest.param(lambda k: f"@revoked * {k.server['ed25519']}\n", None, REVOKED,
                 id="revoked-unlisted-key"),
    pytest.param(lambda k: f"@cert-authority * {k.wrong['ed25519']}\n"
                           f"{k.name} {k.server['ed25519']}\n", None, ACCEPT,
                 id="cert-authority-present"),
    pytest.param(lambda k: f"@cert-authority * {k.server['ed25519']}\n", None, UNKNOWN,
                 id="cert-authority-only"),
    pytest.param(lambda k: f"this is garbage\n{k.name}\n{k.name} ssh-ed25519 !!notbase64\n"
                           f"{k.name} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n"
                           f"|1|bad|hash {k.server['ed25519']}\n@bogus * {k.wrong['ed25519']}\n"
                           f"{k.name} {k.server['ed25519']}\n", None, ACCEPT, id="bad-lines"),
    pytest.param(lambda k: f"{k.name} {k.server['ed25519']}\r\n", None, ACCEPT, id="crlf"),
    pytest.param(lambda k: f"{k.name} {k.wrong['ed25519']}\n{k.name} {k.server['ed25519']}\n",
                 None, ACCEPT, id="two-keys-one-type"),
    pytest.param(lambda k: f"{k.name} {k.server['ed25519']}\n{k.name} {k.wrong['ed25519']}\n",
                 None, ACCEPT, id="two-keys-one-type-reversed"),
    pytest.param(lambda k: f"{k.name} {k.server['ecdsa']}\n", None, ACCEPT,
                 id="prefer-known-ecdsa"),
    pytest.param(lambda k: f"{k.name} {k.server['rsa']}\n", None, ACCEPT, id="prefer-known-rsa"),
    pytest.param(lambda k: f"{k.name} {k.wrong['ecdsa']}\n{k.name} {k.server['rsa']}\n", None,
                 CHANGED, id="first-known-type-decides"),
    pytest.param(lambda k: f"{k.name} {k.server['ed25519']}\n", "ecdsa", CHANGED,
                 id="other-type-only-known"),
    pytest.param(lambda k: "".join(f"{k.name} {k.server[t]}\n" for t in KINDS), "rsa", ACCEPT,
                 id="all-types-rsa"),
    pytest.param(lambda k: "".join(f"{k.name} {k.server[t]}\n" for t in KINDS), "ecdsa", ACCEPT,
                 id="all-types-ecdsa"),
    pytest.param(lambda k: f"@revoked * {k.server['rsa']}\n"
                           + "".join(f"{k.name} {k.server[t]}\n" for t in KINDS), "rsa", REVOKED,
                 id="revoked-rsa"),
    pytest.param(lambda k: f"{k.name} {k.server['ed25519']}\n{k.name} {k.wrong['rsa']}\n", "rsa",
                 CHANGED, id="wrong-rsa"),
]  # fmt: skip


def _write_known_hosts(path: Path, text: str) -> None:
    """Lines starting with HASH are hashed by the real `ssh-keygen -H`."""
    plain = [line for line in text.splitlines(keepends=True) if not line.startswith("HASH ")]
    hashed = [line[5:] for line in text.splitlines(keepends=True) if line.startswith("HASH ")]
    if hashed:
        path.write_text("".join(hashed))
        subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
        hashed_text = path.read_text()
        assert "|1|" in hashed_text
        assert "127.0.0.1" not in hashed_text
        path.write_text(hashed_text + "".join(plain))
    else:
        path.write_bytes("".join(plain).encode())


def _openssh(server: Sshd, known: Path, alg: str | None) -> tuple[Decision, str, str]:
    """Real ssh's decision, the key type and fingerprint it was shown."""
    args = ["ssh", "-v", "-F", "/dev/null", "-p", str(server.port), "-i", str(server.client_key),
            "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "UpdateHostKeys=no", "-o", "CheckHostIP=no", "-o", "IdentitiesOnly=yes",
            "-o", "ConnectTimeout=10", "-l", server.user]  # fmt: skip
    if alg is not None:
        args += ["-o", f"HostKeyAlgorithms={ALG[alg]}"]
    proc = subprocess.run(
        [*args, "127.0.0.1", "true"], capture_output=True, text=True, timeout=30,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    err = proc.stderr
    shown = re.search(r"Server host key: (\S+) (SHA256:\S+)", err)
    assert shown, err
    if "is known and matches the" in err:
        assert proc.returncode == 0, err  # it got past the host key and logged in
        decision = ACCEPT
    else:
        assert proc.returncode == 255, err
        assert "Host key verification failed." in err, err
        if "marked as revoked" in err:
            decision = REVOKED
        elif "REMOTE HOST IDENTIFICATION HAS CHANGED" in err:
            decision = CHANGED
        else:
            assert "host key is known for" in err, err
            assert "requested strict checking" in err, err
            decision = UNKNOWN
    return decision, shown.group(1), shown.group(2)


def _ours(port: int, known: kh.KnownHosts, alg: str | None) -> tuple[Decision, str, str]:
    """Our decision on the key the real server offers to Paramiko for the type we ask."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        transport = paramiko.Transport(sock)
        try:
            options = transport.get_security_options()
            if alg is None:
                types = kh.known_key_types(known, "127.0.0.1", port)
                options.key_types = kh.key_type_preference(options.key_types, types)
            else:
                options.key_types = (ALG[alg],)
            transport.start_client(timeout=10)
            key = transport.get_remote_server_key()
        finally:
            transport.close()
    verdict = kh.check(known, "127.0.0.1", port, key.asbytes())
    return verdict.decision, key.get_name(), kh.fingerprint(key.asbytes())


@pytest.mark.parametrize(("text", "alg", "expected"), DIFF_CASES)
def test_decisions_match_openssh(
    multi_key_sshd: tuple[Sshd, Keys], tmp_path: Path, text: Text, alg: str | None,
    expected: Decision,
) -> None:  # fmt: skip
    """On the same known_hosts file, we accept/refuse exactly when real ssh does, for the
    same reason, on the same key type and key."""
    server, keys = multi_key_sshd
    path = tmp_path / "known_hosts"
    _write_known_hosts(path, text(keys))
    theirs = _openssh(server, path, alg)
    ours = _ours(server.port, kh.parse(path.read_text(), str(path)), alg)
    assert theirs[0] == expected  # the table itself is right about OpenSSH
    assert ours == theirs


def test_bad_lines_are_problems_with_line_numbers() -> None:
    """Every malformed line is reported by number and skipped; the good line still counts,
    and no reason quotes the line's text."""
    text = (
        "# comment\n\n"
        "garbage\n"
        "host ssh-ed25519 !!!!\n"
        "@bogus host ssh-ed25519 AAAA\n"
        "@revoked @revoked host ssh-ed25519 AAAA\n"
        "|1|c2FsdA==|x host-less\n"
        "host ssh-foo AAAA\n"
        "host ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA==\n"
    )
    parsed = kh.parse(text, "secrets/known_hosts")
    assert [p.line for p in parsed.problems] == [3, 4, 5, 6, 7, 8, 9]
    assert parsed.entries == ()
    warnings = parsed.warnings()
    assert warnings[0].startswith("secrets/known_hosts line 3: ")
    quoted = ("garbage", "!!!!", "AAAA", "c2FsdA", "ssh-foo", "@bogus")
    assert all("skipped" in w and not any(q in w for q in quoted) for w in warnings)


@pytest.mark.parametrize(
    ("name", "patterns", "expected"),
    [
        pytest.param("web1.example.com", "*.example.com", 1, id="star"),
        pytest.param("example.com", "*.example.com", 0, id="star-needs-dot"),
        pytest.param("web1.example.com", "web?.example.com", 1, id="question"),
        pytest.param("web10.example.com", "web?.example.com", 0, id="question-one-char"),
        pytest.param("web1.example.com", "WEB1.Example.COM", 1, id="pattern-lowercased"),
        pytest.param("web1.example.com", "*.example.com,!web1.example.com", -1, id="negated"),
        pytest.param("web2.example.com", "*.example.com,!web1.example.com", 1, id="not-negated"),
        pytest.param("web1.example.com", "!web1.example.com", -1, id="only-negated"),
        pytest.param("[h]:2222", "[h]:*", 1, id="brackets-literal"),
        pytest.param("h", "[h]", 0, id="brackets-not-a-class"),
        pytest.param("h", "a" * 1100 + ",h", 0, id="overlong-subpattern"),
    ],
)
def test_pattern_lists_follow_openssh(name: str, patterns: str, expected: int) -> None:
    """Wildcards, negation, case and OpenSSH's sub-pattern length limit."""
    assert kh.match_pattern_list(name, patterns) == expected


@pytest.mark.parametrize(
    ("known", "refused", "expected"),
    [
        pytest.param((), (), None, id="none"),
        pytest.param(
            ("ecdsa-sha2-nistp256",), (),
            ["ecdsa-sha2-nistp256", "ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256"], id="ecdsa",
        ),
        pytest.param(
            ("ssh-rsa", "ssh-ed25519"), (),
            ["ssh-ed25519", "rsa-sha2-512", "rsa-sha2-256", "ecdsa-sha2-nistp256"], id="rsa",
        ),
        pytest.param(
            (), ("ssh-ed25519", "ssh-rsa"), ["ecdsa-sha2-nistp256"], id="refused",
        ),
    ],
)  # fmt: skip
def test_key_type_preference(
    known: tuple[str, ...], refused: tuple[str, ...], expected: list[str] | None
) -> None:
    """Known key types first in the library's order; RSA means every RSA algorithm;
    refused key types are left out."""
    available = ("ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256")
    result = kh.key_type_preference(available, known, refused)
    assert result == (list(available) if expected is None else expected)


def test_paramiko_accepts_the_preference() -> None:
    """The list can be set as Paramiko's key_types on every supported Paramiko."""
    with socket.socket() as sock:
        transport = paramiko.Transport(sock)
        try:
            options = transport.get_security_options()
            wanted = kh.key_type_preference(options.key_types, ["ssh-rsa"])
            options.key_types = wanted
            assert list(options.key_types) == wanted
            assert wanted[0].startswith("rsa-sha2-")
        finally:
            transport.close()


def test_garbage_never_raises() -> None:
    """Random bytes and near-misses parse into problems, never exceptions."""
    import random

    rng = random.Random(13)
    alphabet = "ab|1@*!,[]:? \t#\r=+/AAAAC3NzaC1lZDI1NTE5ssh-ed25519"
    lines = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(60))) for _ in range(3000)]
    parsed = kh.parse("\n".join(lines))
    for host, port in (("a", 22), ("b", 2222)):
        assert kh.check(parsed, host, port, b"\x00\x00\x00\x0bssh-ed25519").decision in Decision


# --- through the real connection -----------------------------------------------------


def _connect(server: Sshd, trust: Trust) -> tuple[str, list[str]]:
    """Open a real Connection; the key type it settled on, and the warnings it gave."""
    warnings: list[str] = []
    spec = HostSpec("127.0.0.1", server.port, server.user)
    options = Options(Credentials(key_file=str(server.client_key)), trust,
                      default_user=server.user, timeout=10)  # fmt: skip
    with Connection(spec, options, warn=warnings.append, sftp=False) as conn:
        assert conn.host_key is not None
        return conn.host_key.get_name(), warnings


@pytest.mark.parametrize("kind", ["ecdsa", "rsa", "ed25519"])
def test_pinning_any_key_type_of_a_multi_key_server_connects(
    multi_key_sshd: tuple[Sshd, Keys], tmp_path: Path, kind: str
) -> None:
    """A pinned fingerprint of the server's ECDSA or RSA key is found although the server
    prefers ed25519: the connection asks again for the key types it has not seen."""
    server, keys = multi_key_sshd
    pin = kh.fingerprint(base64.b64decode(keys.server[kind].split()[1]))
    (tmp_path / "known_hosts").write_text("")
    name, _ = _connect(server, Trust(str(tmp_path / "known_hosts"), (pin,)))
    assert kh.key_family(name) == kh.key_family(ALG[kind])


def test_pin_of_no_server_key_lists_every_key_offered(
    multi_key_sshd: tuple[Sshd, Keys], tmp_path: Path
) -> None:
    """A pin that matches none of the server's keys is refused, naming each key seen."""
    server, keys = multi_key_sshd
    pin = kh.fingerprint(base64.b64decode(keys.wrong["ecdsa"].split()[1]))
    (tmp_path / "known_hosts").write_text("")
    with pytest.raises(HostKeyError) as refused:
        _connect(server, Trust(str(tmp_path / "known_hosts"), (pin,)))
    for kind in KINDS:
        assert kh.fingerprint(base64.b64decode(keys.server[kind].split()[1])) in str(refused.value)


def test_revoked_cert_authority_and_garbage_lines_do_not_break_other_hosts(
    multi_key_sshd: tuple[Sshd, Keys],
) -> None:
    """Marker lines and a bad line for other hosts are no longer fatal: the host connects
    with its second ed25519 line, and the bad line is warned about by number."""
    server, keys = multi_key_sshd
    text = (
        f"@revoked otherhost {keys.wrong['rsa']}\n"
        f"@cert-authority *.example.com {keys.wrong['ed25519']}\n"
        "this line is garbage\n"
        f"{keys.name} {keys.wrong['ed25519']}\n"
        f"{keys.name} {keys.server['ed25519']}\n"
    )
    name, warnings = _connect(server, Trust(text))
    assert name == "ssh-ed25519"
    assert warnings == [w for w in warnings if "--known-hosts line 3:" in w]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("text", "words"),
    [
        pytest.param("@revoked * {ed}\n{name} {ed}\n",
                     ("is revoked", "line 1", "host-key-fingerprint"), id="revoked"),
        pytest.param("{name} {wrong}\n", ("HOST KEY CHANGED", "line 1", "known-hosts"),
                     id="changed"),
        pytest.param("[127.0.0.1]:*,!{name} {ed}\n", ("unknown host key", "--host-key-fingerprint"),
                     id="negated"),
    ],
)  # fmt: skip
def test_refusals_say_why_and_how_to_fix(
    multi_key_sshd: tuple[Sshd, Keys], text: str, words: tuple[str, ...]
) -> None:
    """Revoked, changed and unknown keys are refused with the reason and the fix."""
    server, keys = multi_key_sshd
    known = text.format(name=keys.name, ed=keys.server["ed25519"], wrong=keys.wrong["ed25519"])
    with pytest.raises(HostKeyError) as refused:
        _connect(server, Trust(known))
    message = f"{refused.value.message} {refused.value.hint}"
    assert all(w in message for w in words), message
    assert "bug" not in message
