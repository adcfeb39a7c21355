"""`rotate` and `recipients` end to end: values and keys change through sops only, never
as plaintext on disk, on a command line or in output."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sops_deploy.maintain import sopsconfig
from sops_deploy.sops import agekey
from tests.maintaining import PLAIN, VALUES, Cli, sops_plaintext
from tests.support import AgeIdentity, assert_no_secrets


@pytest.fixture
def two_recipient_file(
    encrypt: Callable[..., Path], age_id: AgeIdentity, other_age_id: AgeIdentity
) -> Path:
    return encrypt(PLAIN, recipients=[age_id.public, other_age_id.public])


@pytest.mark.parametrize(
    ("args", "stdin", "check_value"),
    [
        pytest.param(
            ["--generate"], None, lambda v: len(v) == 32 and v.isalnum(), id="generate-alnum"
        ),
        pytest.param(
            ["--generate", "--length", "40", "--charset", "hex"],
            None,
            lambda v: len(v) == 40 and set(v) <= set("0123456789abcdef"),
            id="generate-hex",
        ),
        pytest.param(
            ["--value-stdin"],
            "tok_rotated_from_stdin_77\n",
            lambda v: v == "tok_rotated_from_stdin_77",
            id="value-stdin",
        ),
        pytest.param(
            ["--value-stdin"],
            'it\'s "quoted" # not a comment \\ $HOME \n',
            lambda v: v == 'it\'s "quoted" # not a comment \\ $HOME ',
            id="value-stdin-needs-quoting",
        ),
    ],
)
def test_rotate_changes_exactly_one_value(
    cli: Cli,
    two_recipient_file: Path,
    sops_bin: str,
    age_id: AgeIdentity,
    other_age_id: AgeIdentity,
    secret_values: set[str],
    args: list[str],
    stdin: str | None,
    check_value: Callable[[str], bool],
) -> None:
    """rotate KEY replaces that value only; every recipient still decrypts the file."""
    if stdin:
        secret_values.add(stdin.strip())
    result = cli("rotate", "API_TOKEN", *args, "--file", str(two_recipient_file), input=stdin)
    assert result.returncode == 0, result.stderr
    assert "rotated API_TOKEN" in result.stdout
    for key in (age_id.secret, other_age_id.secret):
        after = sops_plaintext(sops_bin, two_recipient_file, key)
        assert list(after) == list(VALUES)
        assert {k: v for k, v in after.items() if k != "API_TOKEN"} == {
            k: v for k, v in VALUES.items() if k != "API_TOKEN"
        }
        new = after["API_TOKEN"]
        assert new is not None
        assert new != VALUES["API_TOKEN"]
        assert check_value(new)
        assert_no_secrets(result.output, {new})


def test_rotate_data_key_keeps_values_and_recipients(
    cli: Cli,
    two_recipient_file: Path,
    sops_bin: str,
    age_id: AgeIdentity,
    other_age_id: AgeIdentity,
) -> None:
    """rotate --data-key re-encrypts every value; plaintext and recipients stay the same."""
    before = two_recipient_file.read_text()
    result = cli("rotate", "--data-key", "--file", str(two_recipient_file))
    assert result.returncode == 0, result.stderr
    after = two_recipient_file.read_text()
    line = next(x for x in before.splitlines() if x.startswith("API_TOKEN="))
    assert line not in after, "the value must be re-encrypted under a new data key"
    for key in (age_id.secret, other_age_id.secret):
        assert sops_plaintext(sops_bin, two_recipient_file, key) == VALUES


def test_rotate_never_puts_the_value_on_a_command_line(
    cli: Cli, two_recipient_file: Path, tmp_path: Path, sops_bin: str, secret_values: set[str]
) -> None:
    """sops receives the new value on stdin: no argv of any sops run contains it."""
    log = tmp_path / "sops-argv.log"
    wrapper = tmp_path / "sops-wrapper"
    wrapper.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" >> {shlex.quote(str(log))}\n'
        f'exec {shlex.quote(sops_bin)} "$@"\n'
    )
    wrapper.chmod(0o700)
    value = "tok_never_in_argv_5150"
    secret_values.add(value)
    result = cli(
        "rotate",
        "API_TOKEN",
        "--value-stdin",
        "--file",
        str(two_recipient_file),
        input=value,
        env={"SOPS_DEPLOY_SOPS": str(wrapper)},
    )
    assert result.returncode == 0, result.stderr
    argv = log.read_text()
    assert "--value-stdin" in argv
    assert value not in argv


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        pytest.param(["BAD-NAME", "--generate"], None, "not a valid key name", id="bad-key"),
        pytest.param(["API_TOKEN", "--value-stdin"], "", "empty", id="empty-value"),
        pytest.param(["API_TOKEN", "--generate", "--length", "4"], None, "too short", id="short"),
        pytest.param(
            ["API_TOKEN", "--generate", "--charset", "emoji"], None, "emoji", id="charset"
        ),
    ],
)
def test_rotate_rejects_bad_input_and_keeps_the_file(
    cli: Cli, two_recipient_file: Path, args: list[str], stdin: str | None, message: str
) -> None:
    """A bad rotate request exits 2, says why, and leaves the file byte-identical."""
    before = two_recipient_file.read_bytes()
    result = cli("rotate", *args, "--file", str(two_recipient_file), input=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert two_recipient_file.read_bytes() == before


def test_recipients_add_then_remove_rekeys_every_matching_file(
    cli: Cli,
    encrypt: Callable[..., Path],
    tmp_path: Path,
    sops_bin: str,
    age_id: AgeIdentity,
    other_age_id: AgeIdentity,
) -> None:
    """add re-keys every matching file for the new key; remove takes it away again."""
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    files = []
    for name in ("app.env.encrypted", "prod.env.encrypted"):
        files.append(encrypt(PLAIN, name=name).rename(secrets_dir / name))
    unrelated = secrets_dir / "notes.txt"
    unrelated.write_text("not a sops file\n")
    (tmp_path / ".sops.yaml").write_text(sopsconfig.render([age_id.public]))

    added = cli("recipients", "add", other_age_id.public)
    assert added.returncode == 0, added.stderr
    assert (
        "2 file(s) re-keyed: secrets/app.env.encrypted, secrets/prod.env.encrypted" in added.stdout
    )
    assert other_age_id.public in (tmp_path / ".sops.yaml").read_text()
    for path in files:
        assert sops_plaintext(sops_bin, path, other_age_id.secret) == VALUES
    assert unrelated.read_text() == "not a sops file\n"

    again = cli("recipients", "add", other_age_id.public)
    assert "0 file(s) re-keyed" in again.stdout

    removed = cli("recipients", "remove", other_age_id.public)
    assert removed.returncode == 0, removed.stderr
    assert "2 file(s) re-keyed" in removed.stdout
    assert other_age_id.public not in (tmp_path / ".sops.yaml").read_text()
    for path in files:
        assert sops_plaintext(sops_bin, path, age_id.secret) == VALUES
        denied = cli("validate", "--file", str(path), env={"AGE_KEY": other_age_id.secret})
        assert denied.returncode == 5


def test_recipients_refuses_to_remove_the_last_recipient(
    cli: Cli, encrypt: Callable[..., Path], tmp_path: Path, age_id: AgeIdentity
) -> None:
    """Removing the only recipient is refused: nobody could decrypt the files afterwards."""
    enc = encrypt(PLAIN, name="x.env.encrypted")
    config = tmp_path / ".sops.yaml"
    config.write_text(sopsconfig.render([age_id.public]))
    before = (config.read_text(), enc.read_bytes())
    result = cli("recipients", "remove", age_id.public)
    assert result.returncode == 2
    assert "no recipient" in result.stderr
    assert (config.read_text(), enc.read_bytes()) == before


@pytest.mark.parametrize(
    ("rule", "add", "expected"),
    [
        pytest.param({"age": "A1"}, True, ["A1", "NEW"], id="add-to-age-string"),
        pytest.param({"age": "A1,NEW"}, False, ["A1"], id="remove-from-age-string"),
        pytest.param(
            {"key_groups": [{"age": ["A1"]}, {"age": ["A2"]}]},
            True,
            ["A1", "NEW", "A2"],
            id="add-to-first-key-group",
        ),
        pytest.param(
            {"key_groups": [{"age": ["A1", "NEW"]}, {"age": ["A2", "NEW"]}]},
            False,
            ["A1", "A2"],
            id="remove-from-every-key-group",
        ),
    ],
)
def test_change_recipient_edits_age_lists_and_key_groups(
    age_id: AgeIdentity,
    other_age_id: AgeIdentity,
    rule: dict[str, object],
    add: bool,
    expected: list[str],
) -> None:
    """recipients add/remove edits the `age:` of a rule, or of its key groups, and nothing else."""
    _, a2 = agekey.generate()
    names = {"A1": age_id.public, "A2": a2, "NEW": other_age_id.public}
    text = yaml.safe_dump({"creation_rules": [{"path_regex": "x$", **rule}]})
    for short, full in names.items():
        text = text.replace(short, full)
    doc = yaml.safe_load(text)
    assert sopsconfig.change_recipient(doc, names["NEW"], add=add)
    path_doc = sopsconfig.dump(doc, "# kept comment\n" + text)
    assert path_doc.startswith("# kept comment\n")
    reloaded = yaml.safe_load(path_doc)["creation_rules"][0]
    assert reloaded["path_regex"] == "x$"
    found = sopsconfig._age_list(reloaded.get("age"))
    for group in reloaded.get("key_groups") or []:
        found += sopsconfig._age_list(group.get("age"))
    assert found == [names[e] for e in expected]
