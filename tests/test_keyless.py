"""Every sops key backend, through the CLI, against real servers: AWS KMS and STS (moto
server, also the web identity / OIDC path), Vault transit (OpenBao), GnuPG — alone, age
and KMS together, and with missing or wrong credentials (exit 5, the message names the
backend and key, and no credential appears in any output)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sops_deploy.inputs import environment
from tests import keyless, stores
from tests.keyless import NO_AGE, OIDC_JWT, ROLE, Backends, clean_env, no_aws
from tests.sshd import free_port
from tests.support import AgeIdentity, CliResult, assert_no_secrets

Cli = Callable[..., CliResult]
be, gnupg = keyless.be, keyless.gnupg  # the fixtures


def test_kms_alone_decrypts_with_aws_credentials_and_no_age_key(be: Backends, cli: Cli) -> None:
    """A KMS-only file validates with the AWS credentials and no AGE_KEY at all."""
    enc = be.encrypt(["--kms", be.kms_key()], be.aws())
    result = cli("validate", "--file", str(enc), env={**NO_AGE, **be.aws()})
    assert result.returncode == 0, result.output


def test_kms_through_web_identity_oidc(be: Backends, cli: Cli, tmp_path: Path) -> None:
    """GitHub's OIDC path: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE, no static keys;
    sops's STS client assumes the role at moto (AWS_ENDPOINT_URL_STS)."""
    enc = be.encrypt(["--kms", be.kms_key()], be.aws())
    token = tmp_path / "oidc-token"
    token.write_text(OIDC_JWT)
    env = {**NO_AGE, **be.aws(AWS_ROLE_ARN=ROLE, AWS_WEB_IDENTITY_TOKEN_FILE=str(token))}
    env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = ""
    result = cli("validate", "--file", str(enc), env=env)
    assert result.returncode == 0, result.output


def test_kms_with_temporary_credentials_as_configure_aws_credentials_exports_them(
    be: Backends, cli: Cli, secret_values: set[str]
) -> None:
    """AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN from an assumed role."""
    import boto3

    enc = be.encrypt(["--kms", be.kms_key()], be.aws())
    sts = boto3.client(
        "sts",
        endpoint_url=be.moto.endpoint,
        region_name=stores.AWS_REGION,
        aws_access_key_id=stores.AWS_KEY_ID,
        aws_secret_access_key=stores.AWS_SECRET_KEY,
    )
    creds = sts.assume_role(RoleArn=ROLE, RoleSessionName="gha")["Credentials"]
    temp = {
        "AWS_ACCESS_KEY_ID": creds["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": creds["SecretAccessKey"],
        "AWS_SESSION_TOKEN": creds["SessionToken"],
    }
    secret_values.update(temp.values())
    result = cli("validate", "--file", str(enc), env={**NO_AGE, **be.aws(**temp)})
    assert result.returncode == 0, result.output


def test_secret_credentials_are_masked_first_on_github(
    be: Backends, base_env: dict[str, str], secret_values: set[str], tmp_path: Path
) -> None:
    """On a runner every secret row of the table is registered with ::add-mask:: before
    any other line, and appears nowhere else; the non-secret ones are not masked."""
    import sys

    enc = be.encrypt(["--kms", be.kms_key()], be.aws())
    env = {
        **base_env,
        **NO_AGE,
        **be.aws(AWS_SESSION_TOKEN="FwoGZXIvYXdzEBYaDtemp-session"),
        "GITHUB_ACTIONS": "true",
    }
    secret_values.add("FwoGZXIvYXdzEBYaDtemp-session")
    proc = subprocess.run(
        [sys.executable, "-m", "sops_deploy", "validate", "--file", str(enc)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    masks = [ln.removeprefix("::add-mask::") for ln in lines if ln.startswith("::add-mask::")]
    assert lines[: len(masks)] == [f"::add-mask::{m}" for m in masks], "a mask came late"
    for value in (stores.AWS_KEY_ID, stores.AWS_SECRET_KEY, "FwoGZXIvYXdzEBYaDtemp-session"):
        assert value in masks
    assert stores.AWS_REGION not in masks
    assert be.moto.endpoint not in masks
    rest = "\n".join(lines[len(masks) :]) + proc.stderr
    assert_no_secrets(rest, secret_values)


def test_age_and_kms_in_one_file_decrypt_with_either(
    be: Backends, cli: Cli, age_id: AgeIdentity
) -> None:
    """A file for an age recipient and a KMS key opens with the age key alone and with the
    AWS credentials alone."""
    enc = be.encrypt(["--age", age_id.public, "--kms", be.kms_key()], be.aws())
    assert cli("validate", "--file", str(enc), env={**NO_AGE, **be.aws()}).returncode == 0
    assert cli("validate", "--file", str(enc)).returncode == 0  # AGE_KEY, no AWS_*
    neither = cli("validate", "--file", str(enc), env={**NO_AGE, **no_aws(be)})
    assert neither.returncode == 5
    assert "age age1" in neither.stderr
    assert "AGE_KEY not set" in neither.stderr
    assert "no AWS credentials in the environment" in neither.stderr


def test_kms_without_credentials_names_the_key_and_the_fix(be: Backends, cli: Cli) -> None:
    """Missing AWS credentials: exit 5 naming aws_kms and its ARN; the CLI fix names the
    variables, the action's fix configure-aws-credentials and id-token: write."""
    arn = be.kms_key()
    enc = be.encrypt(["--kms", arn], be.aws())
    result = cli("validate", "--file", str(enc), env={**NO_AGE, **no_aws(be)})
    assert result.returncode == 5
    assert f"aws_kms {arn}: no AWS credentials in the environment" in result.stderr
    assert "AWS_ACCESS_KEY_ID" in result.stderr
    assert "AWS_WEB_IDENTITY_TOKEN_FILE" in result.stderr
    assert "It is encrypted for" not in result.stderr
    action = cli(
        "validate",
        "--file",
        str(enc),
        env={**NO_AGE, **no_aws(be), "SOPS_DEPLOY_INTERFACE": "action"},
    )
    assert action.returncode == 5
    assert "aws-actions/configure-aws-credentials" in action.stderr
    assert "role-to-assume" in action.stderr
    assert "id-token: write" in action.stderr


@pytest.fixture
def strict_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stores.Moto]:
    """A moto server that checks credentials after its first two requests (create the key,
    encrypt for it): every later request must come from an IAM user it knows (none)."""
    server = stores.start_moto(
        tmp_path_factory.mktemp("moto-auth"), {"INITIAL_NO_AUTH_ACTION_COUNT": "2"}
    )
    yield server
    server.stop()


def test_kms_with_wrong_credentials_says_they_were_rejected(
    be: Backends, cli: Cli, strict_moto: stores.Moto
) -> None:
    """Credentials the server does not know: exit 5, aws_kms ARN, rejected, no credential."""
    strict = Backends(be.sops, strict_moto, be.bao, be.tmp)
    arn = strict.kms_key()
    enc = strict.encrypt(["--kms", arn], strict.aws())
    result = cli("validate", "--file", str(enc), env={**NO_AGE, **strict.aws()})
    assert result.returncode == 5
    assert f"aws_kms {arn}: the credentials were rejected" in result.stderr
    assert "StatusCode" not in result.stderr  # sops's own text stays out


def test_vault_transit_alone(be: Backends, cli: Cli) -> None:
    """A transit-only file validates with VAULT_TOKEN and no AGE_KEY."""
    enc = be.encrypt(["--hc-vault-transit", be.transit_key()], be.bao.env())
    assert cli("validate", "--file", str(enc), env={**NO_AGE, **be.bao.env()}).returncode == 0


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        pytest.param("", "VAULT_TOKEN not set", id="missing-token"),
        pytest.param("s.wrong-token-4711", "permission denied (token rejected", id="wrong-token"),
        pytest.param("weak", "permission denied (token rejected", id="token-without-policy"),
    ],
)
def test_vault_transit_failures_name_the_key(
    be: Backends, cli: Cli, secret_values: set[str], token: str, reason: str
) -> None:
    """Exit 5 naming `hc_vault transit URL` and why; the token never shows."""
    url = be.transit_key("deploy")
    enc = be.encrypt(["--hc-vault-transit", url], be.bao.env())
    if token == "weak":
        token = be.bao.create_token(["default"])
    secret_values.add(token) if token else None
    result = cli(
        "validate", "--file", str(enc), env={**NO_AGE, **be.bao.env(), "VAULT_TOKEN": token}
    )
    assert result.returncode == 5
    assert f"hc_vault transit {url}: {reason}" in result.stderr
    assert "update` on transit/decrypt/deploy" in result.stderr
    # the nearest valid input: the root token opens it
    assert cli("validate", "--file", str(enc), env={**NO_AGE, **be.bao.env()}).returncode == 0


def test_pgp_alone_and_without_the_secret_key(
    be: Backends, cli: Cli, gnupg: tuple[Path, str], tmp_path: Path
) -> None:
    """A PGP-only file opens with the GNUPGHOME that holds the key; an empty keyring fails
    with exit 5 naming `pgp FINGERPRINT`."""
    home, fpr = gnupg
    enc = be.encrypt(["--pgp", fpr], {"GNUPGHOME": str(home)})
    ok = cli("validate", "--file", str(enc), env={**NO_AGE, "GNUPGHOME": str(home)})
    assert ok.returncode == 0, ok.output
    empty = tmp_path / "empty-gnupg"
    empty.mkdir(mode=0o700)
    result = cli("validate", "--file", str(enc), env={**NO_AGE, "GNUPGHOME": str(empty)})
    assert result.returncode == 5
    assert f"pgp {fpr}: " in result.stderr
    assert "gpg --import" in result.stderr
    subprocess.run(
        ["gpgconf", "--kill", "all"],
        env={**clean_env(), "GNUPGHOME": str(empty)},
        capture_output=True,
        check=False,
        timeout=30,
    )


def test_backend_credentials_reach_sops_and_no_other_child() -> None:
    """The table decides: sops's environment has every backend variable; the one for
    `Match exec`, git and the tools has none, and no secret of the table."""
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "AWS_SECRET_ACCESS_KEY": "aws-secret-value",
        "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:1",
        "VAULT_TOKEN": "vault-token-value",
        "GNUPGHOME": "/g",
        "AZURE_CLIENT_SECRET": "azure-secret",
        "GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.token",
        "AGE_KEY": "AGE-SECRET-KEY-1X",
    }
    others = environment.child_environ(environ)
    assert others == {"PATH": "/usr/bin", "HOME": "/home/u"}
    sops_env = environment.age_source(environ, None).child_env()
    for name in environ:
        if name != "AGE_KEY":
            assert sops_env[name] == environ[name]
    assert sops_env["SOPS_AGE_KEY"] == "AGE-SECRET-KEY-1X"
    secrets = set(environment.secret_texts(environ))
    assert secrets == {
        "aws-secret-value",
        "vault-token-value",
        "azure-secret",
        "ya29.token",
        "AGE-SECRET-KEY-1X",
    }
    ssh = environment.ssh_setup(environ, "none", "u")
    assert not set(ssh.env) & {"AWS_SECRET_ACCESS_KEY", "VAULT_TOKEN", "GNUPGHOME"}


def test_doctor_lists_each_key_group_and_whether_it_is_usable(
    be: Backends, cli: Cli, age_id: AgeIdentity, gnupg: tuple[Path, str]
) -> None:
    """doctor names every non-age key of the file: usable here (credentials present, server
    answers) or why not, with the fix; the file decrypts through a usable one."""
    home, fpr = gnupg
    arn, url = be.kms_key(), be.transit_key("doctor")
    flags = ["--age", age_id.public, "--kms", arn, "--hc-vault-transit", url, "--pgp", fpr]
    enc = be.encrypt(flags, {**be.aws(), **be.bao.env(), "GNUPGHOME": str(home)})
    env = {**NO_AGE, **be.aws(), **be.bao.env(), "GNUPGHOME": str(home)}
    good = cli("doctor", "--file", str(enc), "--timeout", "5", env=env)
    assert (
        f"✓ {enc} key aws_kms {arn}: credentials present, {be.moto.endpoint} answers" in good.stdout
    )
    assert f"✓ {enc} key hc_vault transit {url}: credentials present, {be.bao.addr} answers" in (
        good.stdout
    )
    assert f"✓ {enc} key pgp {fpr}: secret key in the keyring at {home}" in good.stdout
    assert f"✓ {enc} decrypts with the aws_kms/hc_vault/pgp credentials" in good.stdout
    assert "✓ age key: none given" in good.stdout
    down = f"http://127.0.0.1:{free_port()}"
    empty = home.parent / "empty-gnupg"
    empty.mkdir(mode=0o700)
    bad = {
        **NO_AGE,
        **no_aws(be),
        "VAULT_TOKEN": "",
        "GNUPGHOME": str(empty),
        "AWS_ACCESS_KEY_ID": stores.AWS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": stores.AWS_SECRET_KEY,
        "AWS_ENDPOINT_URL": down,
    }
    result = cli("doctor", "--file", str(enc), "--timeout", "2", env=bad)
    assert result.returncode == 1
    assert f"✗ {enc} key aws_kms {arn}: credentials present, but {down}: not reachable" in (
        result.stdout
    )
    assert f"✗ {enc} key hc_vault transit {url}: VAULT_TOKEN not set" in result.stdout
    assert f"✗ {enc} key pgp {fpr}: no secret key for it in the keyring at {empty}" in result.stdout
    assert "fix: export VAULT_TOKEN" in result.stdout


def test_docs_show_the_backend_table_as_the_code_has_it() -> None:
    """docs/keyless.md lists exactly the table that decides what reaches sops."""
    from sops_deploy.sops import backends
    from tests.support import REPO

    text = (REPO / "docs" / "keyless.md").read_text()
    start = text.index("<!-- backends table")
    body = text[text.index("\n", start) + 1 : text.index("<!-- end backends table -->")]
    assert body.strip() == backends.markdown_table()


@pytest.mark.parametrize(
    ("env", "lacking"),
    [
        pytest.param({"RUNNER_ENVIRONMENT": "github-hosted"}, True, id="hosted-runner"),
        pytest.param({"AWS_EC2_METADATA_DISABLED": "true"}, True, id="metadata-off"),
        pytest.param(
            {"RUNNER_ENVIRONMENT": "self-hosted"}, False, id="self-hosted-may-have-a-role"
        ),
        pytest.param(
            {"AWS_EC2_METADATA_DISABLED": "true", "AWS_PROFILE": "ci"}, False, id="profile"
        ),
        pytest.param(
            {
                "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_ROLE_ARN": ROLE,
                "AWS_WEB_IDENTITY_TOKEN_FILE": "/t",
            },
            False,
            id="web-identity",
        ),
    ],
)
def test_what_counts_as_aws_credentials(env: dict[str, str], lacking: bool, tmp_path: Path) -> None:
    """No AWS credentials only when nothing could provide them: keys, profile, web
    identity, files, or (off GitHub's hosted runners) instance metadata."""
    from sops_deploy.sops import keygroups

    found = keygroups.missing(keygroups.AWS, env, tmp_path)
    assert (found == "no AWS credentials in the environment") is lacking
