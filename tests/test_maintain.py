"""Maintainer commands end to end: init, rotate, recipients, doctor — real sops, age, sshd, git."""

from __future__ import annotations

import io
import os
import shlex
import shutil
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import AgeIdentity, CliResult, assert_no_secrets
from dotenv import dotenv_values
from sshd import Sshd, free_port

from sops_deploy import agekey
from sops_deploy.maintain import sopsconfig

Cli = Callable[..., CliResult]

PLAIN = (
    "DATABASE_URL=postgres://app:Init-Secret-Pw@db:5432/app\n"
    "API_TOKEN=tok_init_0a1b2c3d4e\n"
    'GREETING="hello # not a comment"\n'
)
VALUES = {
    "DATABASE_URL": "postgres://app:Init-Secret-Pw@db:5432/app",
    "API_TOKEN": "tok_init_0a1b2c3d4e",
    "GREETING": "hello # not a comment",
}


def sops_plaintext(sops_bin: str, path: Path, key_text: str) -> dict[str, str | None]:
    """Decrypt with the real sops and parse with python-dotenv (test-side only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env["SOPS_AGE_KEY"] = key_text
    out = subprocess.run(
        [sops_bin, "decrypt", "--input-type", "dotenv", "--output-type", "dotenv", str(path)],
        env=env,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return dict(dotenv_values(stream=io.StringIO(out), interpolate=False))


def init_repo(
    cli: Cli,
    tmp_path: Path,
    sshd_server: Sshd,
    remote_dir: Path,
    secret_values: set[str],
    *extra: str,
) -> CliResult:
    """`git init` + a plaintext .env + `sops-deploy init --from .env --host … --yes`."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".env").write_text(PLAIN)
    secret_values.update(VALUES.values())
    result = cli(
        "init",
        "--from",
        ".env",
        "--host",
        sshd_server.host,
        "--remote-path",
        str(remote_dir / ".env"),
        "--ssh-key-file",
        str(sshd_server.client_key),
        *extra,
    )
    key_file = tmp_path / "secrets" / "age-key.txt"
    if key_file.exists():
        new_secret = agekey.identities(key_file.read_text())[0]
        assert_no_secrets(result.output, {new_secret})
        secret_values.add(new_secret)
    return result


def printed_deploy_command(stdout: str) -> list[str]:
    lines = [line.strip() for line in stdout.splitlines()]
    command = next(line for line in lines if line.startswith("sops-deploy deploy "))
    return shlex.split(command)[1:]


# --- init ----------------------------------------------------------------------------


def test_init_then_printed_deploy_command_works(
    cli: Cli, tmp_path: Path, sshd_server: Sshd, remote_dir: Path, secret_values: set[str]
) -> None:
    """In an empty git repo, init then the printed deploy command deploys every value."""
    result = init_repo(cli, tmp_path, sshd_server, remote_dir, secret_values, "--yes")
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "secrets" / "age-key.txt"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    ignored = subprocess.run(
        ["git", "-C", str(tmp_path), "check-ignore", "secrets/age-key.txt", ".env"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ignored.stdout.split() == ["secrets/age-key.txt", ".env"], "must be git-ignored"
    public = subprocess.run(
        ["age-keygen", "-y", str(key_file)], capture_output=True, text=True, check=True
    ).stdout.strip()
    config = yaml.safe_load((tmp_path / ".sops.yaml").read_text())
    assert config["creation_rules"][0]["age"] == public
    pinned = (tmp_path / "secrets" / "known_hosts").read_text().split()
    assert pinned == sshd_server.known_hosts_line.split()
    assert "gh secret set AGE_KEY < secrets/age-key.txt" in result.stdout
    assert (tmp_path / ".env").exists(), "--yes keeps the plaintext (documented safe default)"

    argv = printed_deploy_command(result.stdout)
    deployed = cli(*argv, env={"AGE_KEY": "", "SSH_PRIVATE_KEY": ""})
    assert deployed.returncode == 0, deployed.stderr
    assert dotenv_values(remote_dir / ".env", interpolate=False) == VALUES


def test_init_workflow_uses_the_action_inputs(
    cli: Cli, tmp_path: Path, sshd_server: Sshd, remote_dir: Path, secret_values: set[str]
) -> None:
    """The written workflow calls the action with inputs action.yml declares, values from init."""
    assert init_repo(cli, tmp_path, sshd_server, remote_dir, secret_values, "--yes").returncode == 0
    workflow = yaml.safe_load((tmp_path / ".github/workflows/deploy-secrets.yml").read_text())
    step = next(
        s for s in workflow["jobs"]["deploy"]["steps"] if "sops-deploy@" in s.get("uses", "")
    )
    assert step["with"]["host"] == sshd_server.host
    assert step["with"]["remote-path"] == str(remote_dir / ".env")
    assert step["with"]["file"] == "secrets/.env.encrypted"
    assert step["with"]["age-key"] == "${{ secrets.AGE_KEY }}"
    assert workflow["permissions"] == {"contents": "read"}
    branch = subprocess.run(
        ["git", "-C", str(tmp_path), "symbolic-ref", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert workflow[True]["push"]["branches"] == [branch]  # YAML 1.1 reads `on:` as True
    action = yaml.safe_load((Path(__file__).parent.parent / "action.yml").read_text())
    declared = set(action.get("inputs") or {})
    if declared:  # the composite action's inputs (DESIGN.md); absent only before it lands
        assert set(step["with"]) <= declared


@pytest.mark.parametrize(
    ("answers", "pinned", "plaintext_left"),
    [
        pytest.param("n\n", False, True, id="host-key-refused-writes-nothing"),
        pytest.param("y\ny\n", True, False, id="host-key-and-delete-confirmed"),
        pytest.param("y\nn\n", True, True, id="host-key-confirmed-plaintext-kept"),
    ],
)
def test_init_prompts(
    cli: Cli,
    tmp_path: Path,
    sshd_server: Sshd,
    remote_dir: Path,
    secret_values: set[str],
    answers: str,
    pinned: bool,
    plaintext_left: bool,
) -> None:
    """Without --yes init asks to pin the host key and to delete the plaintext."""
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".env").write_text(PLAIN)
    secret_values.update(VALUES.values())
    result = cli("init", "--from", ".env", "--host", sshd_server.host, input=answers, timeout=120)
    assert sshd_server.fingerprint in result.stderr
    assert (result.returncode == 0) is pinned, result.stderr
    assert (tmp_path / "secrets" / "known_hosts").exists() is pinned
    assert (tmp_path / ".sops.yaml").exists() is pinned, "a refused host key writes nothing"
    assert (tmp_path / ".env").exists() is plaintext_left


def test_init_with_a_bad_plaintext_names_the_line_and_writes_nothing(
    cli: Cli, tmp_path: Path, secret_values: set[str]
) -> None:
    """A .env line that does not parse fails init with file:line and key; nothing is written."""
    (tmp_path / ".env").write_text('API_TOKEN=tok_fine_value_1\nBROKEN="unterminated\n')
    secret_values.add("tok_fine_value_1")
    result = cli("init", "--from", ".env", "--yes")
    assert result.returncode == 4
    assert ".env:2" in result.stderr
    assert not (tmp_path / "secrets").exists()
    assert not (tmp_path / ".sops.yaml").exists()


def test_init_refuses_a_multiline_value_sops_cannot_store(
    cli: Cli, tmp_path: Path, secret_values: set[str]
) -> None:
    """A multi-line value is refused before sops sees it (sops would echo the line)."""
    (tmp_path / ".env").write_text('CERT="first-line-aaaa\nsecond-line-bbbb"\n')
    secret_values.update({"first-line-aaaa", "second-line-bbbb"})
    result = cli("init", "--from", ".env", "--yes")
    assert result.returncode == 4
    assert "CERT" in result.stderr
    assert "multi-line" in result.stderr
    assert not (tmp_path / "secrets").exists()


def test_init_with_an_unreachable_host_writes_nothing(
    cli: Cli, tmp_path: Path, secret_values: set[str]
) -> None:
    """When the host key cannot be fetched, init fails (exit 1) before writing anything."""
    (tmp_path / ".env").write_text(PLAIN)
    secret_values.update(VALUES.values())
    result = cli("init", "--from", ".env", "--host", f"127.0.0.1:{free_port()}", "--yes")
    assert result.returncode == 1
    assert "cannot connect" in result.stderr
    assert "README#faq-cannot-connect" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".env"]


def test_init_refuses_to_overwrite_without_force(cli: Cli, tmp_path: Path) -> None:
    """A second init names what it would overwrite and stops; --force reuses the age key."""
    assert cli("init").returncode == 0
    key = (tmp_path / "secrets" / "age-key.txt").read_text()
    (tmp_path / ".sops.yaml").write_text(
        "# edited by hand\n" + (tmp_path / ".sops.yaml").read_text()
    )
    edited = (tmp_path / ".sops.yaml").read_text()
    again = cli("init")
    assert again.returncode == 2
    assert ".sops.yaml" in again.stderr
    assert "--force" in again.stderr
    assert (tmp_path / ".sops.yaml").read_text() == edited
    forced = cli("init", "--force")
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / ".sops.yaml").read_text() != edited
    assert (tmp_path / "secrets" / "age-key.txt").read_text() == key, (
        "the age key is never replaced"
    )


def test_init_without_age_keygen_makes_a_key_age_and_sops_accept(
    cli: Cli, tmp_path: Path, sops_bin: str, secret_values: set[str]
) -> None:
    """Without age-keygen on PATH, the Python-generated key is read by age-keygen and sops."""
    (tmp_path / ".env").write_text(PLAIN)
    secret_values.update(VALUES.values())
    result = cli("init", "--from", ".env", "--yes", env={"PATH": str(tmp_path / "empty-bin")})
    assert result.returncode == 0, result.stderr
    key_text = (tmp_path / "secrets" / "age-key.txt").read_text()
    secret_values.add(agekey.identities(key_text)[0])
    assert "# public key: age1" in key_text
    public = subprocess.run(
        ["age-keygen", "-y", str(tmp_path / "secrets" / "age-key.txt")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert public in (tmp_path / ".sops.yaml").read_text()
    assert sops_plaintext(sops_bin, tmp_path / "secrets" / ".env.encrypted", key_text) == VALUES


def test_generated_identity_matches_age_keygen(tmp_path: Path) -> None:
    """agekey.generate() yields an identity whose recipient age-keygen derives identically."""
    identity, public = agekey.generate()
    key_file = tmp_path / "key.txt"
    key_file.write_text(identity + "\n")
    derived = subprocess.run(
        ["age-keygen", "-y", str(key_file)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert derived == public
    assert identity.startswith("AGE-SECRET-KEY-1")


# --- rotate --------------------------------------------------------------------------


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
        pytest.param(["API_TOKEN", "--value-stdin"], "a\nb-multi\n", "several lines", id="multi"),
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


# --- recipients ----------------------------------------------------------------------


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


# --- doctor --------------------------------------------------------------------------


def _doctor_args(sshd_server: Sshd, remote_dir: Path) -> list[str]:
    return [
        "doctor",
        "--host",
        sshd_server.host,
        "--remote-path",
        str(remote_dir / ".env"),
        "--ssh-key-file",
        str(sshd_server.client_key),
    ]


@pytest.fixture
def healthy(
    cli: Cli, tmp_path: Path, sshd_server: Sshd, remote_dir: Path, secret_values: set[str]
) -> dict[str, str]:
    """A repository set up by init; returns the environment doctor runs with."""
    result = init_repo(cli, tmp_path, sshd_server, remote_dir, secret_values, "--yes")
    assert result.returncode == 0, result.stderr
    return {"AGE_KEY": (tmp_path / "secrets" / "age-key.txt").read_text(), "SSH_PRIVATE_KEY": ""}


def test_doctor_passes_on_a_healthy_setup(
    cli: Cli, healthy: dict[str, str], sshd_server: Sshd, remote_dir: Path
) -> None:
    """On what init made, every doctor check passes and it exits 0."""
    result = cli(*_doctor_args(sshd_server, remote_dir), env=healthy)
    assert result.returncode == 0, result.stdout
    assert "✗" not in result.stdout
    for name in ("sops:", ".sops.yaml:", "age key:", "recipients:", "decrypts", "secrets valid:"):
        assert f"✓ {name}" in result.stdout or name in result.stdout
    assert f"✓ host {sshd_server.host}" in result.stdout
    assert "all checks passed" in result.stdout


def _break_yaml(root: Path) -> None:
    (root / ".sops.yaml").write_text("creation_rules: [\n")


def _out_of_sync(root: Path) -> None:
    _, extra = agekey.generate()
    text = (root / ".sops.yaml").read_text()
    (root / ".sops.yaml").write_text(text.replace("age: age1", f"age: {extra},age1"))


def _unpin(root: Path) -> None:
    (root / "secrets" / "known_hosts").write_text("")


@pytest.mark.parametrize(
    ("breakage", "env", "extra", "check", "fix"),
    [
        pytest.param(
            lambda r: (r / ".sops.yaml").unlink(),
            {},
            [],
            ".sops.yaml",
            "run `sops-deploy init`",
            id="no-sops-yaml",
        ),
        pytest.param(_break_yaml, {}, [], ".sops.yaml", "fix the YAML syntax", id="bad-sops-yaml"),
        pytest.param(None, {"AGE_KEY": ""}, [], "age key", "export AGE_KEY=", id="no-age-key"),
        pytest.param(
            None,
            {"AGE_KEY": "", "SOPS_AGE_KEY_FILE": "/nonexistent/key.txt"},
            [],
            "age key",
            "init writes secrets/age-key.txt",
            id="age-key-file-missing",
        ),
        pytest.param(
            None,
            {"AGE_KEY": "age1notaprivatekey"},
            [],
            "age key",
            "AGE-SECRET-KEY-1",
            id="public-key-pasted",
        ),
        pytest.param(
            None,
            {"AGE_KEY": "OTHER"},
            [],
            "secrets/.env.encrypted recipients",
            "sops-deploy recipients add age1",
            id="not-a-recipient",
        ),
        pytest.param(
            _out_of_sync,
            {},
            [],
            "secrets/.env.encrypted recipients",
            "sops updatekeys -y",
            id="recipients-out-of-sync",
        ),
        pytest.param(
            lambda r: (r / "secrets" / ".env.encrypted").unlink(),
            {},
            [],
            "secrets/.env.encrypted",
            "pass the encrypted file with --file",
            id="encrypted-file-missing",
        ),
        pytest.param(
            None,
            {},
            ["--required", "MISSING_KEY"],
            "secrets valid",
            "sops-deploy validate",
            id="required-key-missing",
        ),
        pytest.param(_unpin, {}, [], "host", "--host-key-fingerprint SHA256:", id="host-unpinned"),
        pytest.param(
            None,
            {},
            ["--host", "PORT"],
            "host",
            "check the host name and port",
            id="host-unreachable",
        ),
        pytest.param(
            None,
            {"SOPS_DEPLOY_SOPS": "/nonexistent/sops"},
            [],
            "sops",
            "point it at a sops binary",
            id="sops-missing",
        ),
    ],
)
def test_doctor_names_the_fix_for_each_broken_setup(
    cli: Cli,
    healthy: dict[str, str],
    tmp_path: Path,
    sshd_server: Sshd,
    remote_dir: Path,
    other_age_id: AgeIdentity,
    breakage: Callable[[Path], None] | None,
    env: dict[str, str],
    extra: list[str],
    check: str,
    fix: str,
) -> None:
    """Each broken setup gets a ✗ line for the right check, its fix, and exit 1."""
    if breakage is not None:
        breakage(tmp_path)
    run_env = {
        **healthy,
        **{k: (other_age_id.secret if v == "OTHER" else v) for k, v in env.items()},
    }
    extra = [f"127.0.0.1:{free_port()}" if a == "PORT" else a for a in extra]
    result = cli(*_doctor_args(sshd_server, remote_dir), *extra, env=run_env)
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    failed = [i for i, line in enumerate(lines) if line.startswith(f"✗ {check}")]
    assert failed, result.stdout
    assert any(fix in lines[i + 1] for i in failed if i + 1 < len(lines)), result.stdout
    assert "check(s) failed" in result.stdout


def test_age_keygen_is_on_path() -> None:
    """The tests' reference age-keygen is the real binary (conftest relies on it too)."""
    assert shutil.which("age-keygen")


# --- docs ----------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def test_every_faq_link_in_the_code_has_its_readme_entry() -> None:
    """Each `README#faq-…` an error hint points at exists as an anchor in the README."""
    import re

    readme = (REPO / "README.md").read_text()
    anchors = set(re.findall(r'<a id="(faq-[a-z0-9-]+)"></a>', readme))
    cited = {
        m
        for path in (REPO / "src").rglob("*.py")
        for m in re.findall(r"README#(faq-[a-z0-9-]+)", path.read_text())
    }
    assert len(cited) >= 8
    assert cited <= anchors, f"missing FAQ entries: {sorted(cited - anchors)}"


def test_release_workflow_moves_v1_with_plain_git_and_minimal_permissions() -> None:
    """The release workflow runs no third-party action and may only write contents."""
    workflow = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    assert workflow["permissions"] == {}
    job = workflow["jobs"]["move-major-tag"]
    assert job["permissions"] == {"contents": "write"}
    assert not [s for s in job["steps"] if "uses" in s]
    script = job["steps"][0]["run"]
    assert "git tag -f v1" in script
    assert "${{" not in script, "inputs reach the script through env: only"
    dependabot = yaml.safe_load((REPO / ".github/dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in dependabot["updates"]} == {"pip", "github-actions"}


@pytest.mark.parametrize(
    ("release", "v1_at"),
    [
        pytest.param("v1.1.0", "v1.1.0", id="newest-moves-v1"),
        pytest.param("v1.0.1", "v1.0.0", id="backport-leaves-v1"),
        pytest.param("v2.0.0", "v1.0.0", id="other-major-leaves-v1"),
    ],
)
def test_release_script_moves_v1_only_to_the_newest_v1_release(
    tmp_path: Path, release: str, v1_at: str
) -> None:
    """The release step's own bash, run against a local bare repository, moves v1 correctly."""
    origin = tmp_path / "project.git"
    work = tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    commits = {}
    for tag in ("v1.0.0", "v1.0.1", "v1.1.0", "v2.0.0"):
        subprocess.run(
            [*git, "-C", str(work), "commit", "-q", "--allow-empty", "-m", tag], check=True
        )
        subprocess.run([*git, "-C", str(work), "tag", tag], check=True)
        commits[tag] = subprocess.run(
            ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    subprocess.run(["git", "-C", str(work), "tag", "v1", "v1.0.0"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", str(origin), "--tags"], check=True)
    workflow = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    script = workflow["jobs"]["move-major-tag"]["steps"][0]["run"]
    runner = tmp_path / "runner"
    runner.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TAG": release,
        "REPO": "project",
        "SERVER": f"file://{tmp_path}",
        "TOKEN": "test-token-not-a-secret",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    proc = subprocess.run(
        ["bash", "-e", "-c", script], cwd=runner, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    v1 = subprocess.run(
        ["git", "-C", str(origin), "rev-parse", "v1^{commit}"], capture_output=True, text=True
    ).stdout.strip()
    assert v1 == commits[v1_at]


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
