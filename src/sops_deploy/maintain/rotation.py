"""Rotation without plaintext on disk: one value (`rotate KEY`), the data key
(`rotate --data-key`), and the recipients (`recipients add|remove`).

A new value travels generator → sops's stdin; sops re-encrypts the file in place. Key
names are reported, values never.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Callable
from pathlib import Path

from sops_deploy import envfile
from sops_deploy.errors import SopsDeployError, UsageError
from sops_deploy.inputs.settings import ToolPlaces
from sops_deploy.maintain import sopscmd, sopsconfig, storedform
from sops_deploy.output.reporter import Reporter
from sops_deploy.sops import agekey, runner, tools

CHARSETS = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "urlsafe": string.ascii_letters + string.digits + "-_",
    "alpha": string.ascii_letters,
    "digits": string.digits,
    # printable ASCII without the characters that need quoting in a .env or a shell
    "symbols": string.ascii_letters + string.digits + "!%*+,-./:=?@^_~",
}
MIN_LENGTH = 8


def generate(length: int, charset: str) -> str:
    """A random value from the OS CSPRNG."""
    if charset not in CHARSETS:
        raise UsageError(
            f"--charset {charset!r} is not one of {', '.join(CHARSETS)}", "use --charset alnum"
        )
    if length < MIN_LENGTH:
        raise UsageError(
            f"--length {length} is too short for a secret", f"use --length {MIN_LENGTH} or more"
        )
    alphabet = CHARSETS[charset]
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _decrypted(
    sops_bin: str, enc: runner.EncryptedFile, age: runner.AgeKeySource, reporter: Reporter
) -> dict[str, str]:
    entries, _problems = envfile.parse_dotenv(
        runner.decrypt(sops_bin, enc, age).decode("utf-8", "replace"), enc.path
    )
    reporter.mask([(e.key, e.value) for e in entries])
    return {e.key: e.value for e in entries}


def dotenv_text(key: str, value: str) -> str:
    """How `value` must be written after `KEY=` so the dotenv parser reads it back exactly.

    sops stores a dotenv value as the raw text after `=`, on one line: see `storedform`
    (a value with line breaks is written double-quoted with `\\n` escapes).
    """
    text = storedform.stored_text(key, value)
    if text is None:
        raise UsageError(
            f"{key}: the new value cannot be written in a dotenv file so that it reads back "
            "exactly",
            "use `sops edit` for this value, or choose one without that mix of quotes",
        )
    return text


def rotate_value(
    path: str,
    key: str,
    value: str,
    age: runner.AgeKeySource,
    places: ToolPlaces,
    reporter: Reporter,
) -> None:
    """Set `key` to `value` in the encrypted dotenv file at `path`, in place, through sops."""
    if not envfile.KEY_RE.match(key):
        raise UsageError(
            f"{key!r} is not a valid key name", "use letters, digits and _, e.g. API_TOKEN"
        )
    if not value:
        raise UsageError(f"{key}: the new value is empty", "pass a value on stdin or --generate")
    reporter.mask([(key, value)])
    sops_bin = tools.find_sops(places)
    enc = runner.inspect(path)
    if enc.stored_format != "dotenv":
        raise UsageError(
            f"{path} is stored as {enc.stored_format}, not dotenv",
            "rotate keys of yaml/json files with `sops set` directly",
        )
    stored = dotenv_text(key, value)
    before = _decrypted(sops_bin, enc, age, reporter)
    sopscmd.set_value(sops_bin, Path(path), enc.stored_format, key, stored, age)
    after = _decrypted(sops_bin, runner.inspect(path), age, reporter)
    others_same = {k: v for k, v in after.items() if k != key} == {
        k: v for k, v in before.items() if k != key
    }
    if after.get(key) != value or not others_same:
        raise UsageError(
            f"{path}: after `sops set`, {key} does not read back as the new value, or "
            "another key changed",
            f"restore the file (`git checkout -- {path}`) and set {key} with `sops edit`",
            file=path,
        )
    verb = "rotated" if key in before else "added"
    reporter.line(f"✓ {verb} {key} in {path} ({len(after) - 1} other key(s) verified unchanged)")
    reporter.info("  commit and push the file to deploy it, or run `sops-deploy deploy`")


def rotate_data_key(
    paths: list[str], age: runner.AgeKeySource, places: ToolPlaces, reporter: Reporter
) -> None:
    """sops's data-key rotation for every file: every value re-encrypted under a new key."""
    sops_bin = tools.find_sops(places)
    for path in paths:
        enc = runner.inspect(path)
        sopscmd.rotate_data_key(sops_bin, Path(path), enc.stored_format, age)
        reporter.line(f"✓ {path}: new data key, every value re-encrypted")
    reporter.info(
        "  commit and push the files; old ciphertexts in git history still use the old key"
    )


def change_recipients(
    recipient: str,
    *,
    add: bool,
    config_path: Path,
    age: runner.AgeKeySource,
    places: ToolPlaces,
    reporter: Reporter,
    sha: Callable[[Path], str] = lambda p: hashlib.sha256(p.read_bytes()).hexdigest(),
) -> None:
    """Add or remove a master key (an age recipient, KMS ARN, transit URI, PGP fingerprint,
    …: `masterkeys.kind_of`) in `.sops.yaml`, then re-key every file it covers."""
    from sops_deploy.maintain import masterkeys

    kind = masterkeys.kind_of(recipient)
    recipient = masterkeys.normal(kind, recipient)
    original = config_path.read_text(encoding="utf-8") if config_path.is_file() else ""
    doc, rules = sopsconfig.load(config_path)
    files = []
    for path, _rule in sopsconfig.matching_files(config_path.parent, rules):
        try:
            files.append((path, runner.inspect(str(path))))
        except SopsDeployError:  # a matching file that is not sops-encrypted
            continue
    changed_config = sopsconfig.change_recipient(doc, recipient, add=add, kind=kind)
    if not add and files and age.given:
        mine = set(agekey.recipients_of(age.key_text() or ""))
        if recipient in mine:
            reporter.warn(
                f"you are removing your own key's recipient {recipient}: after this, this "
                "AGE_KEY can no longer decrypt these files"
            )
    if changed_config:
        config_path.write_text(sopsconfig.dump(doc, original), encoding="utf-8")
        reporter.line(f"✓ {config_path.name}: {'added' if add else 'removed'} {recipient}")
    else:
        reporter.line(f"= {config_path.name}: already {'lists' if add else 'omits'} {recipient}")
    sops_bin = tools.find_sops(places)
    changed: list[str] = []
    try:
        for path, enc in files:
            before = sha(path)
            if not add and recipient in {m.ident for g in enc.groups for m in g}:
                # updatekeys keeps the data key, which the removed key can still unwrap from
                # older copies: a new data key first (while every key can still decrypt)
                # makes all of those copies useless for future values.
                sopscmd.rotate_data_key(sops_bin, path, enc.stored_format, age)
            sopscmd.update_keys(
                sops_bin, path.resolve(), enc.stored_format, age, config_path.resolve()
            )
            shown = path.relative_to(config_path.parent).as_posix()
            if sha(path) != before:
                changed.append(shown)
                done = "" if add else " and rotated its data key"
                reporter.line(f"✓ re-keyed {shown}{done}")
            else:
                reporter.line(f"= {shown}: already up to date")
    except SopsDeployError:
        if changed_config and not changed:
            config_path.write_text(original, encoding="utf-8")
            reporter.info(f"  restored {config_path.name}: no file was re-keyed")
        raise
    if not files:
        reporter.warn(f"no encrypted file matches the rules in {config_path}")
    reporter.line(f"{len(changed)} file(s) re-keyed: {', '.join(changed) or 'none'}")
