"""`sops-deploy vault-sync` against a real OpenBao (tests/stores.py): exact values, one
KV v2 secret, idempotence, drift, removal, foreign secrets, bad tokens, a store that is
down; no value or token in any output."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.stores import OpenBao, http
from tests.storesync import PLAIN, outputs, runner, values_of
from tests.support import CliResult


@pytest.fixture
def vault_sync(
    cli: Callable[..., CliResult], openbao: OpenBao, secret_values: set[str], tmp_path: Path
) -> Callable[..., CliResult]:
    secret_values.add(openbao.token)
    return runner(cli, "vault-sync", openbao.env(), secret_values, tmp_path)


def unique(prefix: str = "secret/apps") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def kv(openbao: OpenBao, path: str) -> tuple[dict[str, str], dict[str, str], int]:
    """(data, custom_metadata, current_version) of a KV v2 secret under secret/."""
    rest = path.removeprefix("secret/")
    meta = openbao.api("GET", f"secret/metadata/{rest}")["data"]
    status, answer = http(
        "GET", f"{openbao.addr}/v1/secret/data/{rest}", headers={"X-Vault-Token": openbao.token}
    )
    data = answer["data"]["data"] if status == 200 else {}
    return data, meta["custom_metadata"] or {}, meta["current_version"]


def test_one_secret_with_exact_values_marked_and_idempotent(
    vault_sync: Callable[..., CliResult], encrypt: Callable[..., Path], openbao: OpenBao
) -> None:
    path = unique()
    enc = encrypt(PLAIN)
    first = vault_sync("--file", str(enc), "--path", path)
    assert first.returncode == 0, first.output
    data, custom, version = kv(openbao, path)
    assert data == values_of(PLAIN)
    assert data["TLS_KEY"].count("\n") == 3
    assert data["LEADING_EQ"].startswith("=")
    assert data["EMPTY"] == ""
    assert "$$" in data["DOLLAR"]
    assert '"' in data["QUOTED"]
    assert custom["managed-by"] == "sops-deploy"
    assert custom["sops-deploy-source"] == "secrets.env.encrypted"
    assert version == 1
    assert "add     TLS_KEY" in first.stdout
    assert outputs(first)["changed"] == "true"
    assert set(outputs(first)["changed-keys"].split(",")) == set(values_of(PLAIN))

    again = vault_sync("--file", str(enc), "--path", path)
    assert again.returncode == 0, again.output
    assert "nothing to change" in again.stdout
    assert "0 write request(s)" in again.stdout
    assert kv(openbao, path)[2] == 1  # no new version
    assert outputs(again)["changed"] == "false"
    assert outputs(again)["changed-keys"] == ""


def test_check_names_drift_sync_overwrites_a_ui_edit_and_removes_a_dropped_key(
    vault_sync: Callable[..., CliResult], encrypt: Callable[..., Path], openbao: OpenBao
) -> None:
    path = unique()
    enc = encrypt(PLAIN)
    assert vault_sync("--file", str(enc), "--path", path).returncode == 0
    rest = path.removeprefix("secret/")
    edited = {**values_of(PLAIN), "APP_MODE": "edited-in-the-ui-7", "EXTRA": "ui-only-value-5"}
    openbao.api("POST", f"secret/data/{rest}", {"data": edited})

    check = vault_sync("--file", str(enc), "--path", path, "--check")
    assert check.returncode == 3, check.output
    assert "update  APP_MODE" in check.stdout
    assert "remove  EXTRA" in check.stdout
    assert "edited-in-the-ui-7" not in check.output
    assert "ui-only-value-5" not in check.output
    assert kv(openbao, path)[2] == 2  # --check wrote nothing

    fixed = vault_sync("--file", str(enc), "--path", path)
    assert fixed.returncode == 0, fixed.output
    assert kv(openbao, path)[0] == values_of(PLAIN)
    assert vault_sync("--file", str(enc), "--path", path, "--check").returncode == 0

    fewer = PLAIN.replace("APP_MODE=production-mode-x\n", "")
    smaller = encrypt(fewer, name="fewer.env.encrypted")
    gone = vault_sync("--file", str(smaller), "--path", path)
    assert gone.returncode == 0, gone.output
    assert "remove  APP_MODE" in gone.stdout
    assert kv(openbao, path)[0] == values_of(fewer)
    assert outputs(gone)["removed-keys"] == "APP_MODE"


def test_dry_run_says_what_it_would_write_and_writes_nothing(
    vault_sync: Callable[..., CliResult], encrypt: Callable[..., Path], openbao: OpenBao
) -> None:
    path = unique()
    dry = vault_sync("--file", str(encrypt(PLAIN)), "--path", path, "--dry-run")
    assert dry.returncode == 0, dry.output
    assert "(dry run)" in dry.stdout
    assert "add     DATABASE_URL" in dry.stdout
    assert "0 write request(s)" in dry.stdout
    status, _ = http(
        "GET",
        f"{openbao.addr}/v1/secret/metadata/{path.removeprefix('secret/')}",
        headers={"X-Vault-Token": openbao.token},
    )
    assert status == 404


def test_keys_globs_and_prefix_select_like_github_sync(
    vault_sync: Callable[..., CliResult], encrypt: Callable[..., Path], openbao: OpenBao
) -> None:
    path = unique()
    enc = str(encrypt(PLAIN))
    r = vault_sync("--file", enc, "--path", path, "--keys", "DATABASE_URL,APP_*", "--prefix", "W_")
    assert r.returncode == 0, r.output
    want = values_of(PLAIN)
    assert kv(openbao, path)[0] == {
        "W_DATABASE_URL": want["DATABASE_URL"],
        "W_APP_MODE": want["APP_MODE"],
    }
    bad = vault_sync("--file", enc, "--path", path, "--keys", "NOPE_*")
    assert bad.returncode == 2
    assert "--keys NOPE_* matches no key" in bad.output


def test_a_foreign_secret_is_refused_and_left_untouched_until_adopt(
    vault_sync: Callable[..., CliResult], encrypt: Callable[..., Path], openbao: OpenBao
) -> None:
    path = unique()
    rest = path.removeprefix("secret/")
    openbao.api("POST", f"secret/data/{rest}", {"data": {"THEIRS": "someone-elses-value-1"}})
    enc = str(encrypt(PLAIN))
    refused = vault_sync("--file", enc, "--path", path)
    assert refused.returncode == 1, refused.output
    assert "was not created by sops-deploy" in refused.output
    assert "--adopt" in refused.output
    assert kv(openbao, path) == ({"THEIRS": "someone-elses-value-1"}, {}, 1)
    check = vault_sync("--file", enc, "--path", path, "--check")
    assert check.returncode == 3
    assert "remove  THEIRS" in check.stdout
    adopted = vault_sync("--file", enc, "--path", path, "--adopt")
    assert adopted.returncode == 0, adopted.output
    data, custom, version = kv(openbao, path)
    assert data == values_of(PLAIN)
    assert custom["managed-by"] == "sops-deploy"
    assert version == 2
    assert vault_sync("--file", enc, "--path", path).returncode == 0  # ours now


def test_a_bad_an_expired_and_a_powerless_token_fail_saying_so(
    vault_sync: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    openbao: OpenBao,
    secret_values: set[str],
) -> None:
    enc = str(encrypt(PLAIN))
    wrong = "s.wrong-token-value-123456"
    secret_values.add(wrong)
    bad = vault_sync("--file", enc, "--path", unique(), extra={"VAULT_TOKEN": wrong})
    assert bad.returncode == 1
    assert "refused the token: it is wrong or expired" in bad.output
    short = openbao.create_token(["default"], ttl="1s")
    secret_values.add(short)
    time.sleep(2.5)
    expired = vault_sync("--file", enc, "--path", unique(), extra={"VAULT_TOKEN": short})
    assert expired.returncode == 1
    assert "wrong or expired" in expired.output
    weak = openbao.create_token(["default"])
    secret_values.add(weak)
    denied = vault_sync("--file", enc, "--path", unique(), extra={"VAULT_TOKEN": weak})
    assert denied.returncode == 1
    assert "policy does not allow" in denied.output
    missing = vault_sync("--file", enc, "--path", unique(), extra={"VAULT_TOKEN": ""})
    assert missing.returncode == 2
    assert "set VAULT_TOKEN" in missing.output


def test_a_store_that_is_down_or_silent_fails_within_the_timeout(
    vault_sync: Callable[..., CliResult], encrypt: Callable[..., Path]
) -> None:
    enc = str(encrypt(PLAIN))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    down = vault_sync(
        "--file", enc, "--path", unique(), extra={"VAULT_ADDR": f"http://127.0.0.1:{port}"}
    )
    assert down.returncode == 1
    assert "cannot reach Vault" in down.output
    assert "refused" in down.output.lower()
    with socket.socket() as silent:  # accepts (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        addr = f"http://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        hung = vault_sync(
            "--file", enc, "--path", unique(), "--timeout", "1", extra={"VAULT_ADDR": addr}
        )
        elapsed = time.monotonic() - start
    assert hung.returncode == 1
    assert "no answer within --timeout 1 s" in hung.output
    assert elapsed < 15


def test_the_environments_sync_section_lists_the_secrets(
    vault_sync: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    openbao: OpenBao,
    tmp_path: Path,
) -> None:
    enc = encrypt(PLAIN)
    one, two = unique(), unique()
    (tmp_path / "sops-deploy.yaml").write_text(
        "environments:\n"
        "  prod:\n"
        f"    files: [{enc.name}]\n"
        "    sync:\n"
        "      vault:\n"
        f"        - path: {one}\n"
        "          keys: [DATABASE_URL]\n"
        f"        - {{path: {two}, keys: ['APP_*'], prefix: X_}}\n"
    )
    r = vault_sync("--config", "sops-deploy.yaml", "--env", "prod")
    assert r.returncode == 0, r.output
    want = values_of(PLAIN)
    assert kv(openbao, one)[0] == {"DATABASE_URL": want["DATABASE_URL"]}
    assert kv(openbao, two)[0] == {"X_APP_MODE": want["APP_MODE"]}
    (tmp_path / "sops-deploy.yaml").write_text(
        "environments:\n  prod:\n    sync:\n      vault:\n        - keys: [A]\n"
    )
    bad = vault_sync("--config", "sops-deploy.yaml", "--env", "prod")
    assert bad.returncode == 2
    assert "sops-deploy.yaml:5" in bad.output
    assert "no `path`" in bad.output


def test_nested_mounts_namespaces_and_a_kv_v1_mount(
    vault_sync: Callable[..., CliResult], encrypt: Callable[..., Path], openbao: OpenBao
) -> None:
    enc = str(encrypt(PLAIN))
    mount = f"team-{uuid.uuid4().hex[:6]}/kv"
    openbao.enable("kv-v2", mount)
    nested = vault_sync("--file", enc, "--path", f"{mount}/apps/web")
    assert nested.returncode == 0, nested.output
    assert openbao.api("GET", f"{mount}/data/apps/web")["data"]["data"] == values_of(PLAIN)
    v1 = f"old-{uuid.uuid4().hex[:6]}"
    openbao.enable("kv", v1)
    refused = vault_sync("--file", enc, "--path", f"{v1}/apps/web")
    assert refused.returncode == 2
    assert "is not KV version 2" in refused.output
    bare = vault_sync("--file", enc, "--path", mount)
    assert bare.returncode == 2
    assert "names the mount, not a secret" in bare.output
    nothing = vault_sync("--file", enc, "--path", "nowhere-mounted/apps/web")
    assert nothing.returncode == 1
    assert "shows this token no secrets engine there" in nothing.output

    namespace = f"ns{uuid.uuid4().hex[:6]}"
    openbao.api("POST", f"sys/namespaces/{namespace}")
    status, answer = http(
        "POST",
        f"{openbao.addr}/v1/sys/mounts/secret",
        {"type": "kv", "options": {"version": "2"}},
        {"X-Vault-Token": openbao.token, "X-Vault-Namespace": namespace},
    )
    assert status in (200, 204), answer
    inside = vault_sync("--file", enc, "--path", "secret/apps/web",
                        extra={"VAULT_NAMESPACE": namespace})  # fmt: skip
    assert inside.returncode == 0, inside.output
    status, answer = http(
        "GET",
        f"{openbao.addr}/v1/secret/data/apps/web",
        headers={"X-Vault-Token": openbao.token, "X-Vault-Namespace": namespace},
    )
    assert status == 200
    assert answer["data"]["data"] == values_of(PLAIN)
