"""Running sops: detect a file's stored format, read its recipients, decrypt it in memory.

The age key reaches sops only through the child's environment (`SOPS_AGE_KEY`), and the
plaintext only through a pipe: nothing secret is written to disk or put on a command line.
The child's environment is explicit: the one the front door resolved (`AgeKeySource.base`,
without any other secret) plus the identity. sops's own `SOPS_AGE_KEY_CMD` passes through
`base`. An SSH key (SSH_PRIVATE_KEY / --ssh-key-file) reaches sops as its age identity
through an inherited descriptor (`sshage.pipe_identity`), only for a file encrypted for it.
`error` is the one mapping of sops's exit codes to `DecryptError`s that say what to do
(decrypt here, the maintainer commands in `maintain/sopscmd.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sops_deploy.errors import DecryptError, ToolError, UsageError
from sops_deploy.sops.keygroups import AGE, MasterKey

if TYPE_CHECKING:
    import subprocess

    from sops_deploy.sops.sshage import SshIdentity

# sops's own exit codes (getsops/sops cmd/sops/codes).
SOPS_COULD_NOT_RETRIEVE_KEY = 128
SOPS_MAC_MISMATCH = 51
SOPS_MAC_NOT_FOUND = 52
SOPS_ERROR_DECRYPTING_MAC = 24
SOPS_ERROR_DECRYPTING_TREE = 25
SOPS_METADATA_NOT_FOUND = 1

STORED_FORMATS = ("dotenv", "yaml", "json", "binary")

NOT_ENCRYPTED_HINT = (
    "encrypt it first: `sops encrypt --input-type dotenv --output-type dotenv "
    "--age <recipient> .env > secrets/.env.encrypted`, then delete the plaintext "
    "(see README#faq-not-encrypted)"
)
WRONG_KEY_HINT = (
    "either set AGE_KEY to a private key whose public key is one of the recipients above, "
    "or, on a machine that can decrypt, add your recipient to .sops.yaml and run "
    "`sops updatekeys {file}` and commit the result (see README#faq-no-key-could-decrypt)"
)
TAMPERED_HINT = (
    "the file was modified after it was encrypted (MAC mismatch). Restore it from git "
    "(`git checkout -- {file}`) or edit it only through `sops edit` (see README#faq-mac-mismatch)"
)


@dataclass(frozen=True)
class AgeKeySource:
    """Where sops gets the age identity (key text from AGE_KEY / SOPS_AGE_KEY, or a key
    file) and the rest of the environment it runs in (`base`, holding no secret)."""

    text: str | None = field(default=None, repr=False)
    file: str | None = None
    base: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    # The SSH key, offered to sops as an age identity for files encrypted for it.
    ssh_key: str | None = field(default=None, repr=False, compare=False)
    ssh_key_file: str | None = field(default=None, compare=False)
    ssh_passphrase: str | None = field(default=None, repr=False, compare=False)
    # The sops key backends' credentials (`backends.TABLE`), for the sops child alone.
    backend: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    interface: str = field(default="cli", compare=False)  # whose words a fix uses

    def child_env(self) -> dict[str, str]:
        """The whole environment of a sops child: `base`, the backend credentials, and
        exactly one age identity."""
        env = {
            k: v
            for k, v in {**self.base, **self.backend}.items()
            if k not in ("AGE_KEY", "SOPS_AGE_KEY", "SOPS_AGE_KEY_FILE")
        }
        env["SOPS_DISABLE_VERSION_CHECK"] = "1"
        if self.text is not None:
            env["SOPS_AGE_KEY"] = self.text
        elif self.file is not None:
            env["SOPS_AGE_KEY_FILE"] = self.file
        return env

    def key_text(self) -> str | None:
        if self.text is not None:
            return self.text
        if self.file is not None:
            try:
                return Path(self.file).read_text(encoding="utf-8")
            except OSError:
                return None
        return None

    @property
    def given(self) -> bool:
        return self.text is not None or self.file is not None

    @property
    def key_cmd(self) -> str | None:
        """sops's own SOPS_AGE_KEY_CMD, passed through to it as is."""
        return self.base.get("SOPS_AGE_KEY_CMD") or None

    @property
    def ssh_source(self) -> str:
        return "SSH_PRIVATE_KEY" if self.ssh_key else f"--ssh-key-file {self.ssh_key_file}"

    def ssh_identity(self, recipients: tuple[str, ...]) -> SshIdentity | None:
        """The SSH key as an age identity, when one of `recipients` is that key."""
        from sops_deploy.sops import sshage

        if not any(sshage.is_ssh_recipient(r) for r in recipients):
            return None
        text = self.ssh_key
        if text is None and self.ssh_key_file is not None:
            try:
                text = Path(self.ssh_key_file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None
        if text is None:
            return None
        identity = sshage.identity_from(text, self.ssh_passphrase)
        return identity if identity is not None and identity.decrypts(recipients) else None


@dataclass(frozen=True)
class EncryptedFile:
    """An encrypted file as read from disk: its path, stored format, age recipients, and
    every key group (age, aws_kms, hc_vault, pgp, gcp_kms, azure_kv: `keygroups`)."""

    path: str
    stored_format: str
    recipients: tuple[str, ...]
    groups: tuple[tuple[MasterKey, ...], ...] = field(default=(), compare=False)


def _lines_starting(raw: bytes, prefix: bytes) -> Iterator[bytes]:
    """Each line of `raw` that starts with `prefix` (what `^prefix` finds with re.MULTILINE),
    found by `bytes.find`: a 2 MB encrypted file is scanned at memchr speed, not by a
    regex tried at every line start."""
    needle = b"\n" + prefix
    start = 0 if raw.startswith(prefix) else raw.find(needle) + 1 or -1
    while start != -1:
        end = raw.find(b"\n", start)
        yield raw[start:] if end == -1 else raw[start:end]
        if end == -1:
            return
        start = raw.find(needle, end) + 1 or -1


def inspect(path: str) -> EncryptedFile:
    """Read `path`, detect how sops stored it, and list its age recipients."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no such file",
            "pass the encrypted file with --file (input `file`); the default is "
            "secrets/.env.encrypted",
            file=path,
        ) from None
    except IsADirectoryError:
        raise UsageError(
            f"{path}: is a directory, not an encrypted file", "pass a file path", file=path
        ) from None
    except OSError as exc:
        raise UsageError(
            f"{path}: cannot read ({exc.strerror})", "check the path and its permissions", file=path
        ) from None
    not_encrypted = DecryptError(
        f"{path}: this file is not encrypted by sops (no sops metadata); refusing to deploy "
        "plaintext",
        NOT_ENCRYPTED_HINT,
        file=path,
    )
    if not raw or raw.isspace():
        raise DecryptError(f"{path}: the file is empty", NOT_ENCRYPTED_HINT, file=path)
    if not raw.isascii():  # what sops writes is ASCII but for values stored in clear
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise not_encrypted from None
    if next(_lines_starting(raw, b"sops_version="), None) is not None:
        from sops_deploy.sops import keygroups

        groups = keygroups.groups_of(keygroups.unflatten(_lines_starting(raw, b"sops_")))
        return EncryptedFile(path, "dotenv", _age_recipients(groups), groups)
    text = raw.decode("utf-8")
    doc: object
    try:
        import json  # here, not at the top: the front door imports this module

        doc = json.loads(text)
        kind = "json"
    except ValueError:
        try:
            import yaml  # here, not at the top: `--version` and `--help` stay fast

            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            raise not_encrypted from None
        kind = "yaml"
    if not isinstance(doc, dict) or not isinstance(doc.get("sops"), dict):
        raise not_encrypted
    if kind == "json" and set(doc) == {"data", "sops"}:
        kind = "binary"
    from sops_deploy.sops import keygroups

    groups = keygroups.groups_of(doc["sops"])
    return EncryptedFile(path, kind, _age_recipients(groups), groups)


def _age_recipients(groups: tuple[tuple[MasterKey, ...], ...]) -> tuple[str, ...]:
    return tuple(m.ident for g in groups for m in g if m.kind == AGE and m.ident)


def run(
    argv: list[str],
    env: dict[str, str],
    *,
    what: str,
    timeout: float,
    stdin: bytes | None = None,
    cwd: str | None = None,
    file: str | None = None,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.CompletedProcess[bytes]:
    """Run sops (argv[0]) with output captured; a missing binary or a hang is an error
    naming `what`. The exit status is the caller's to judge. `pass_fds`: descriptors the
    child inherits (the SSH identity's pipe)."""
    import subprocess

    try:
        return subprocess.run(
            argv,
            env=env,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
            pass_fds=pass_fds,
        )
    except FileNotFoundError:
        raise ToolError(
            f"sops not found at {argv[0]}", "run `sops-deploy tools install` or put sops on PATH"
        ) from None
    except subprocess.TimeoutExpired:
        raise DecryptError(
            f"{what}: sops did not finish within {timeout:.0f}s",
            "check that sops is not waiting for a key service",
            file=file,
        ) from None


def decrypt(sops_bin: str, enc: EncryptedFile, key: AgeKeySource, *, timeout: float = 60) -> bytes:
    """Decrypt `enc` with sops; returns the plaintext bytes (dotenv text, or JSON for yaml/json).

    The plaintext is read from sops's stdout pipe and never written anywhere.
    """
    out_type = "json" if enc.stored_format in ("yaml", "json") else enc.stored_format
    argv = [
        sops_bin,
        "decrypt",
        "--input-type",
        enc.stored_format,
        "--output-type",
        out_type,
        "--",  # a path that starts with "-" is a path, not an option
        enc.path,
    ]
    identity = key.ssh_identity(enc.recipients)
    if identity is None:
        proc = run(argv, key.child_env(), what=enc.path, timeout=timeout, file=enc.path)
    else:
        from sops_deploy.sops import sshage

        reads = len(enc.recipients) + 1  # sops reads its identities once per recipient
        with sshage.pipe_identity(identity, key.child_env(), reads=reads) as (env, fds):
            proc = run(argv, env, what=enc.path, timeout=timeout, file=enc.path, pass_fds=fds)
    if proc.returncode == 0:
        return proc.stdout
    raise error(proc.returncode, proc.stderr.decode("utf-8", "replace"), key, enc=enc)


def error(
    code: int,
    stderr: str,
    key: AgeKeySource,
    *,
    enc: EncryptedFile | None = None,
    what: str | None = None,
    hint: str = "the file may be truncated or corrupted: restore it from git, or re-encrypt it",
) -> DecryptError:
    """What a failed sops run means, and what to do: the one mapping of sops's exit codes.

    `enc` (when known) lets a wrong key name the file's recipients; `what` names what sops
    worked on (default: the file); `hint` is the fix for a failure with no known cause.
    sops's stderr is shown only through `safe_stderr`, which withholds quoted text.
    """
    path = what or (enc.path if enc is not None else "sops")
    file = enc.path if enc is not None else None
    if code == SOPS_COULD_NOT_RETRIEVE_KEY:
        from sops_deploy.sops import nokey

        if enc is not None:
            detail, fix = nokey.explain(enc, key, stderr)
            return DecryptError(f"{path}: no key could decrypt this file: {detail}", fix, file=file)
        return DecryptError(
            f"{path}: no key could decrypt this file: {nokey.age_detail(key)}",
            WRONG_KEY_HINT.format(file=path),
        )
    if code in (
        SOPS_MAC_MISMATCH,
        SOPS_MAC_NOT_FOUND,
        SOPS_ERROR_DECRYPTING_MAC,
        SOPS_ERROR_DECRYPTING_TREE,
    ):
        return DecryptError(
            f"{path}: integrity check failed (sops exit {code})",
            TAMPERED_HINT.format(file=file or path),
            file=file,
        )
    if "metadata not found" in stderr:
        return DecryptError(
            f"{path}: this file is not encrypted by sops (no sops metadata); refusing to "
            "deploy plaintext",
            NOT_ENCRYPTED_HINT,
            file=file,
        )
    return DecryptError(
        f"{path}: sops failed (exit {code}): {safe_stderr(stderr)}", hint, file=file
    )


_QUOTED = re.compile(r"""("[^"]*"|'[^']*'|`[^`]*`|\[[^\]]*\])""")
_LINE_TEXT = re.compile(r"\b(line)\s*:.*", re.IGNORECASE)


def safe_stderr(stderr: str, lines: int = 3, limit: int = 400) -> str:
    """The last lines of sops's stderr with anything that may be plaintext withheld.

    sops quotes what it could not parse ("invalid dotenv input line: A=secret",
    complex values as `[...]`), so quoted text and a line's text after `line:` are cut.
    """
    text = " ".join(stderr.strip().splitlines()[-lines:])
    text = _LINE_TEXT.sub(r"\1: (content withheld)", text)
    return _QUOTED.sub("(content withheld)", text)[:limit]
