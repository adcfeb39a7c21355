"""`init --kms/--hc-vault-transit/--pgp/--age` and `recipients add|remove` for each kind of
key, against the real servers: what `.sops.yaml` records, what the encrypted file opens
with, and the workflow init writes for CI without an AGE_KEY."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests import keyless
from tests.keyless import NO_AGE, Backends, no_aws
from tests.support import AgeIdentity, CliResult

Cli = Callable[..., CliResult]
be, gnupg = keyless.be, keyless.gnupg  # the fixtures
PLAIN = "DB_PASSWORD=Init-Kms-Pw-4711\nAPI_TOKEN=tok_init_kms_99aa\n"


def _init(
    cli: Cli, root: Path, secret_values: set[str], *flags: str, env: dict[str, str]
) -> CliResult:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".env").write_text(PLAIN)
    secret_values.update({"Init-Kms-Pw-4711", "tok_init_kms_99aa"})
    return cli("init", "--from", ".env", "--yes", *flags, env={**NO_AGE, **env})


def _rule(root: Path) -> dict[str, str]:
    rule: dict[str, str] = yaml.safe_load((root / ".sops.yaml").read_text())["creation_rules"][0]
    return rule


ENCRYPTED = "secrets/.env.encrypted"


def test_init_kms_writes_a_keyless_setup(
    be: Backends, cli: Cli, tmp_path: Path, secret_values: set[str]
) -> None:
    """init --kms ARN: .sops.yaml lists the key (no age), no age key is made, the file
    opens with AWS credentials alone, and the workflow logs in through OIDC."""
    arn = be.kms_key()
    result = _init(cli, tmp_path, secret_values, "--kms", arn, env=be.aws())
    assert result.returncode == 0, result.output
    rule = _rule(tmp_path)
    assert rule["kms"] == arn
    assert "age" not in rule
    assert not (tmp_path / "secrets" / "age-key.txt").exists()
    assert "gh secret set AGE_KEY" not in result.stdout
    assert "AWS_ROLE_ARN" in result.stdout
    workflow = (tmp_path / ".github/workflows/deploy-secrets.yml").read_text()
    assert "aws-actions/configure-aws-credentials" in workflow
    assert "role-to-assume: ${{ vars.AWS_ROLE_ARN }}" in workflow
    assert "id-token: write" in workflow
    assert "aws-region: eu-west-1" in workflow
    assert "secrets.AGE_KEY" not in workflow
    yaml.safe_load(workflow)
    ok = cli("validate", "--file", ENCRYPTED, env={**NO_AGE, **be.aws()})
    assert ok.returncode == 0, ok.output
    denied = cli("validate", "--file", ENCRYPTED, env={**NO_AGE, **no_aws(be)})
    assert denied.returncode == 5
    assert f"aws_kms {arn}" in denied.stderr


def test_init_age_and_kms_and_transit_make_one_group_any_key_opens(
    be: Backends, cli: Cli, tmp_path: Path, secret_values: set[str], age_id: AgeIdentity
) -> None:
    """Several key flags: .sops.yaml records each kind; the file opens with any one."""
    arn, url = be.kms_key(), be.transit_key("init")
    flags = ("--age", age_id.public, "--kms", arn, "--hc-vault-transit", url)
    result = _init(cli, tmp_path, secret_values, *flags, env={**be.aws(), **be.bao.env()})
    assert result.returncode == 0, result.output
    rule = _rule(tmp_path)
    assert (rule["age"], rule["kms"], rule["hc_vault_transit_uri"]) == (age_id.public, arn, url)
    workflow = (tmp_path / ".github/workflows/deploy-secrets.yml").read_text()
    assert "VAULT_TOKEN: ${{ secrets.VAULT_TOKEN }}" in workflow
    assert "age-key: ${{ secrets.AGE_KEY }}" in workflow
    only_age = {"AGE_KEY": age_id.secret, **no_aws(be), "VAULT_TOKEN": ""}
    assert cli("validate", "--file", ENCRYPTED, env=only_age).returncode == 0
    assert cli("validate", "--file", ENCRYPTED, env={**NO_AGE, **be.aws()}).returncode == 0
    only_vault = {**NO_AGE, **no_aws(be), **be.bao.env()}
    assert cli("validate", "--file", ENCRYPTED, env=only_vault).returncode == 0


def test_init_pgp(
    be: Backends, cli: Cli, tmp_path: Path, secret_values: set[str], gnupg: tuple[Path, str]
) -> None:
    """init --pgp FINGERPRINT: recorded as pgp, opens with that keyring."""
    home, fpr = gnupg
    result = _init(cli, tmp_path, secret_values, "--pgp", fpr.lower(), env={"GNUPGHOME": str(home)})
    assert result.returncode == 0, result.output
    assert _rule(tmp_path)["pgp"] == fpr
    ok = cli("validate", "--file", ENCRYPTED, env={**NO_AGE, "GNUPGHOME": str(home)})
    assert ok.returncode == 0, ok.output


@pytest.mark.parametrize(
    ("flag", "value", "says"),
    [
        pytest.param("--kms", "arn:aws:s3:::bucket", "not an AWS KMS key ARN", id="kms-not-kms"),
        pytest.param("--kms", "age1qqqq", "not an AWS KMS key ARN", id="kms-given-age"),
        pytest.param("--hc-vault-transit", "http://v:8200/transit/sops", "not", id="uri-no-v1"),
        pytest.param("--pgp", "ABCDEF", "not a PGP fingerprint", id="pgp-short"),
    ],
)
def test_init_refuses_a_key_of_the_wrong_form_and_writes_nothing(
    cli: Cli, tmp_path: Path, flag: str, value: str, says: str
) -> None:
    """A key that is not of its flag's kind: exit 2, nothing written."""
    result = cli("init", flag, value, "--yes", env=NO_AGE)
    assert result.returncode == 2, result.output
    assert says in result.stderr
    assert not (tmp_path / ".sops.yaml").exists()


def test_recipients_add_and_remove_each_kind(
    be: Backends,
    cli: Cli,
    tmp_path: Path,
    secret_values: set[str],
    gnupg: tuple[Path, str],
) -> None:
    """From a KMS-only setup: add a transit key and a PGP key (the file then opens with
    either), remove the KMS key (AWS credentials alone no longer open it)."""
    home, fpr = gnupg
    arn, url = be.kms_key(), be.transit_key("recipients")
    creds = {**be.aws(), **be.bao.env(), "GNUPGHOME": str(home)}
    assert _init(cli, tmp_path, secret_values, "--kms", arn, env=creds).returncode == 0
    added = cli("recipients", "add", url, env={**NO_AGE, **creds})
    assert added.returncode == 0, added.output
    assert f"added {url}" in added.stdout
    assert cli("recipients", "add", fpr, env={**NO_AGE, **creds}).returncode == 0
    rule = _rule(tmp_path)
    assert (rule["kms"], rule["hc_vault_transit_uri"], rule["pgp"]) == (arn, url, fpr)
    vault_only = {**NO_AGE, **no_aws(be), **be.bao.env()}
    assert cli("validate", "--file", ENCRYPTED, env=vault_only).returncode == 0
    pgp_only = {**NO_AGE, **no_aws(be), "GNUPGHOME": str(home), "VAULT_TOKEN": ""}
    assert cli("validate", "--file", ENCRYPTED, env=pgp_only).returncode == 0
    removed = cli("recipients", "remove", arn, env={**NO_AGE, **creds})
    assert removed.returncode == 0, removed.output
    assert "kms" not in _rule(tmp_path)
    assert "arn:aws:kms" not in (tmp_path / ENCRYPTED).read_text()
    empty = tmp_path / "no-keyring"
    empty.mkdir(mode=0o700)
    aws_only = {**NO_AGE, **be.aws(), "VAULT_TOKEN": "", "GNUPGHOME": str(empty)}
    assert cli("validate", "--file", ENCRYPTED, env=aws_only).returncode == 5
    unknown = cli("recipients", "add", "not-a-key", env={**NO_AGE, **creds})
    assert unknown.returncode == 2
    assert "is not a key sops-deploy knows" in unknown.stderr
