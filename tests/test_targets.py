"""Several targets per host (`targets:` in sops-deploy.yaml) and the `files` format, against
a real sshd reached through a counting TCP proxy (`proxy.Proxy`): one decrypt, one
connection per host, every target written atomically, drift found per target."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from sops_deploy.envfile import Entry
from sops_deploy.inputs.settings import Target
from sops_deploy.plan.targets import plan_targets, select
from tests.proxy import Proxy
from tests.sshd import Sshd
from tests.support import REPO, CliResult

Cli = Callable[..., CliResult]

SOURCE = (
    "APP_SECRET=app-secret-9f2c1e\n"
    "APP_URL=https://app.example.test\n"
    "POSTGRES_PASSWORD=pg-pass-4b7d0a\n"
    "POSTGRES_USER=appuser\n"
    "WORKER_TOKEN=worker-token-58ae\n"
)


@pytest.fixture
def proxy(sshd_server: Sshd) -> Iterator[Proxy]:
    """A pass-through TCP proxy in front of the session sshd: it counts connections."""
    p = Proxy(sshd_server.port)
    yield p
    p.close()


def write_config(tmp_path: Path, sshd: Sshd, port: int, targets: str, extra: str = "") -> Path:
    """sops-deploy.yaml with environment `home` on one host (through port `port`)."""
    pub = sshd.host_key.with_suffix(".pub").read_text().split()
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    config = tmp_path / "sops-deploy.yaml"
    config.write_text(
        "version: 1\n"
        "environments:\n"
        "  home:\n"
        "    files: [secrets.env.encrypted]\n"
        f"    hosts: [{sshd.user}@127.0.0.1:{port}]\n"
        "    known-hosts: known_hosts\n"
        "    retries: 0\n" + extra + "    targets:\n" + targets
    )
    return config


def three_targets(srv: Path) -> str:
    """A compose app .env, a database's secrets directory, and a worker's env file.

    The worker's file uses `dotenv`: the `systemd` format is being added to main by
    another change; swap it in once it has landed (README example uses it)."""
    marker = srv / "ran"
    return (
        f"      - remote-path: {srv}/app/.env\n"
        "        format: compose\n"
        '        keys: ["APP_*"]\n'
        f"        post-command: echo app >> {marker}\n"
        f"      - remote-path: {srv}/db/secrets\n"
        "        format: files\n"
        '        keys: ["POSTGRES_*"]\n'
        f"        post-command: echo db >> {marker}\n"
        f"      - remote-path: {srv}/worker/worker.env\n"
        "        format: dotenv\n"
        "        keys: [WORKER_TOKEN, APP_URL]\n"
        '        file-mode: "0640"\n'
    )


def make_dirs(srv: Path) -> None:
    for name in ("app", "db/secrets", "worker"):
        (srv / name).mkdir(parents=True)


def test_one_run_deploys_every_target_over_one_connection_then_check_finds_each_hand_edit(
    cli: Cli,
    encrypt: Callable[..., Path],
    tmp_path: Path,
    remote_dir: Path,
    sshd_server: Sshd,
    proxy: Proxy,
    secret_values: set[str],
) -> None:
    """Deploy: each target holds exactly its keys, one connection, one post-command per
    changed target; then a hand edit in each target is drift (exit 3, key named, no value)."""
    encrypt(SOURCE)
    make_dirs(remote_dir)
    config = write_config(tmp_path, sshd_server, proxy.port, three_targets(remote_dir))
    env_args = ["--config", str(config), "--env", "home"]
    outputs = tmp_path / "gh_output"
    outputs.write_text("")

    result = cli("deploy", *env_args, env={"GITHUB_OUTPUT": str(outputs)})
    assert result.returncode == 0, result.output
    assert proxy.connections == 1

    app = remote_dir / "app" / ".env"
    assert dotenv_values(app) == {
        "APP_SECRET": "app-secret-9f2c1e",
        "APP_URL": "https://app.example.test",
    }
    assert stat.S_IMODE(app.stat().st_mode) == 0o600
    secrets_dir = remote_dir / "db" / "secrets"
    listed = sorted(p.name for p in secrets_dir.iterdir() if not p.name.startswith("."))
    assert listed == ["POSTGRES_PASSWORD", "POSTGRES_USER"]
    assert (secrets_dir / "POSTGRES_PASSWORD").read_bytes() == b"pg-pass-4b7d0a"  # no newline
    assert stat.S_IMODE((secrets_dir / "POSTGRES_USER").stat().st_mode) == 0o400
    manifest = json.loads((secrets_dir / ".sops-deploy-manifest").read_text())
    assert manifest["files"] == ["POSTGRES_PASSWORD", "POSTGRES_USER"]
    worker = remote_dir / "worker" / "worker.env"
    assert dotenv_values(worker) == {
        "WORKER_TOKEN": "worker-token-58ae",
        "APP_URL": "https://app.example.test",
    }
    assert stat.S_IMODE(worker.stat().st_mode) == 0o640
    assert (remote_dir / "ran").read_text().split() == ["app", "db"]
    assert not list(remote_dir.rglob("*.tmp"))
    assert not list(remote_dir.rglob("*.lock"))

    text = outputs.read_text()
    added = text.split("added-keys<<", 1)[1].split("\n")[1].split(",")
    assert f"{remote_dir}/db/secrets:POSTGRES_PASSWORD" in added
    assert f"{remote_dir}/worker/worker.env:APP_URL" in added
    report = json.loads(text.split("report<<", 1)[1].split("\n")[1])
    assert [(r["target"], r["format"], r["status"]) for r in report] == [
        (f"{remote_dir}/app/.env", "compose", "changed"),
        (f"{remote_dir}/db/secrets", "files", "changed"),
        (f"{remote_dir}/worker/worker.env", "dotenv", "changed"),
    ]

    again = cli("deploy", *env_args)
    assert again.returncode == 0, again.output
    assert proxy.connections == 2
    assert (remote_dir / "ran").read_text().split() == ["app", "db"]  # nothing changed
    assert cli("check", *env_args).returncode == 0

    hand = ("hand-edit-1a2b", "hand-edit-3c4d", "hand-edit-5e6f")
    secret_values.update(hand)
    app.write_text(app.read_text().replace("app-secret-9f2c1e", hand[0]))
    (secrets_dir / "POSTGRES_USER").chmod(0o600)
    (secrets_dir / "POSTGRES_USER").write_text(hand[1])
    worker.write_text(worker.read_text().replace("worker-token-58ae", hand[2]))
    connections = proxy.connections
    check = cli("check", *env_args)
    print(check.stdout, check.stderr)
    assert check.returncode == 3, check.output
    assert proxy.connections == connections + 1
    for key in (
        f"{remote_dir}/app/.env:APP_SECRET",
        f"{remote_dir}/db/secrets:POSTGRES_USER",
        f"{remote_dir}/worker/worker.env:WORKER_TOKEN",
    ):
        assert key in check.stdout, check.stdout
    assert "POSTGRES_PASSWORD" not in check.stdout.split("difference", 1)[1]
    for value in hand:
        assert value not in check.output


def test_files_removes_only_what_it_wrote_and_refuses_unsafe_names(
    cli: Cli,
    encrypt: Callable[..., Path],
    tmp_path: Path,
    remote_dir: Path,
    sshd_server: Sshd,
    proxy: Proxy,
) -> None:
    """A key that leaves the source loses its file only if the manifest lists it; a key
    that is no safe file name is refused (exit 4) before anything is written."""
    secrets_dir = remote_dir / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "FOREIGN").write_text("not ours")
    targets = f"      - remote-path: {secrets_dir}\n        format: files\n"
    config = write_config(tmp_path, sshd_server, proxy.port, targets)
    env_args = ["--config", str(config), "--env", "home"]
    encrypt("KEEP_ME=keep-value-1\nDROP_ME=drop-value-2\n")
    assert cli("deploy", *env_args).returncode == 0
    assert {p.name for p in secrets_dir.iterdir()} >= {"KEEP_ME", "DROP_ME", "FOREIGN"}

    encrypt("KEEP_ME=keep-value-1\n")
    diff = cli("diff", *env_args)
    assert diff.returncode == 0
    assert "DROP_ME" in diff.stdout
    assert "FOREIGN" not in diff.stdout
    result = cli("deploy", *env_args)
    assert result.returncode == 0, result.output
    names = {p.name for p in secrets_dir.iterdir() if not p.name.startswith(".")}
    assert names == {"KEEP_ME", "FOREIGN"}
    assert (secrets_dir / "FOREIGN").read_text() == "not ours"

    before = sorted(p.name for p in secrets_dir.iterdir())
    encrypt('{"KEEP_ME": "keep-value-1", "../escape": "escape-value-3"}', fmt="json")
    bad = cli("deploy", *env_args)
    assert bad.returncode == 4, bad.output
    assert sorted(p.name for p in secrets_dir.iterdir()) == before
    assert not (remote_dir / "escape").exists()


def test_a_key_no_target_receives_is_a_warning_and_a_target_without_keys_an_error(
    cli: Cli,
    encrypt: Callable[..., Path],
    tmp_path: Path,
    remote_dir: Path,
    sshd_server: Sshd,
    proxy: Proxy,
) -> None:
    """validate warns about a key that goes nowhere; a target whose patterns match no key
    fails validation (exit 4) naming the target."""
    encrypt(SOURCE)
    make_dirs(remote_dir)
    only_app = f"      - remote-path: {remote_dir}/app/.env\n        keys: ['APP_*']\n"
    config = write_config(tmp_path, sshd_server, proxy.port, only_app)
    result = cli("validate", "--config", str(config), "--env", "home")
    assert result.returncode == 0, result.output
    for key in ("POSTGRES_PASSWORD", "POSTGRES_USER", "WORKER_TOKEN"):
        assert f"{key}: [key-without-target]" in result.stderr
    assert f"→ {remote_dir}/app/.env (compose): APP_SECRET, APP_URL" in result.stdout

    typo = only_app + f"      - remote-path: {remote_dir}/db/secrets\n        format: files\n"
    typo += "        keys: ['POSTGRE_*']\n"
    config = write_config(tmp_path, sshd_server, proxy.port, typo)
    result = cli("deploy", "--config", str(config), "--env", "home")
    assert result.returncode == 4, result.output
    assert f"target {remote_dir}/db/secrets" in result.stderr
    assert not (remote_dir / "app" / ".env").exists()


@pytest.mark.parametrize(
    ("targets", "extra", "message"),
    [
        pytest.param(
            "      - format: files\n", "", "targets[1] has no `remote-path`", id="no-remote-path"
        ),
        pytest.param(
            "      - remote-path: /srv/a.env\n      - remote-path: /srv/a.env\n",
            "",
            "/srv/a.env is also the target on line 9",
            id="same-path-twice",
        ),
        pytest.param(
            "      - {remote-path: /srv/s, format: files, backup: 3}\n",
            "",
            "a files target keeps no backups",
            id="files-backup",
        ),
        pytest.param(
            "      - remote-path: /srv/a.env\n",
            "    remote-path: /srv/b.env\n",
            "has both `remote-path` and `targets:`",
            id="both",
        ),
        pytest.param(
            "      - {remote-path: /srv/a.env, file-mode: '0644'}\n",
            "",
            "readable by every user",
            id="world-readable",
        ),
        pytest.param(
            "      - {remote-path: /srv/a.env, colour: blue}\n",
            "",
            "unknown key `colour`",
            id="unknown-key",
        ),
    ],
)
def test_bad_targets_are_config_errors_with_their_line(
    cli: Cli, tmp_path: Path, sshd_server: Sshd, targets: str, extra: str, message: str
) -> None:
    """Every mistake in `targets:` is exit 2 naming sops-deploy.yaml and the line."""
    config = write_config(tmp_path, sshd_server, sshd_server.port, targets, extra)
    result = cli("check", "--config", str(config), "--env", "home")
    assert result.returncode == 2, result.output
    assert message in result.stderr
    assert f"{config}:" in result.stderr


def test_flags_that_name_one_file_are_refused_with_targets(
    cli: Cli, tmp_path: Path, sshd_server: Sshd
) -> None:
    """--remote-path (or the action's remote-path) cannot pick one of several targets."""
    config = write_config(tmp_path, sshd_server, sshd_server.port, "      - remote-path: /a.env\n")
    result = cli("check", "--config", str(config), "--env", "home", "--remote-path", "/b.env")
    assert result.returncode == 2, result.output
    assert "--remote-path cannot be combined" in result.stderr


def entries(*keys: str) -> dict[str, Entry]:
    return {k: Entry(k, f"value of {k}", "s.env", i + 1) for i, k in enumerate(keys)}


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        pytest.param((), ["APP_A", "APP_B", "DB_PASS", "db_user"], id="default-all"),
        pytest.param(("APP_*",), ["APP_A", "APP_B"], id="glob"),
        pytest.param(("APP_[B]", "DB_PASS"), ["APP_B", "DB_PASS"], id="class-and-name"),
        pytest.param(("DB_*",), ["DB_PASS"], id="case-sensitive"),
        pytest.param(("NOPE",), [], id="none"),
    ],
)
def test_keys_patterns_select_in_source_order(
    patterns: tuple[str, ...], expected: list[str]
) -> None:
    """`keys:` are shell-style, case-sensitive patterns; no patterns: every key."""
    assert list(select(entries("APP_A", "APP_B", "DB_PASS", "db_user"), patterns)) == expected


def test_files_plan_holds_exact_bytes_and_refuses_case_collisions() -> None:
    """A files target's file holds the value's UTF-8 bytes exactly; two keys that differ
    only in case would be one file on some filesystems: refused."""
    secrets = {
        "TOKEN": Entry("TOKEN", "a\nb ", "s.env", 1),
        "token": Entry("token", "x", "s.env", 2),
    }
    plans, problems = plan_targets([Target("/d", "files")], secrets, listed=False)
    assert plans[0].files == {"TOKEN": b"a\nb ", "token": b"x"}
    assert [(p.key, p.rule, p.severity) for p in problems] == [
        ("token", "file-name-collision", "error")
    ]


def test_the_readme_example_is_a_valid_environment(tmp_path: Path) -> None:
    """The README's "one host, several services" sops-deploy.yaml loads as three targets."""
    from sops_deploy.defaults import FORMATS
    from sops_deploy.inputs import configfile

    readme = (REPO / "README.md").read_text()
    section = readme.split("### One host, several services", 1)[1]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    if "systemd" not in FORMATS:
        pytest.skip("the systemd format has not landed on this branch yet")
    config = tmp_path / "sops-deploy.yaml"
    config.write_text(block)
    targets = configfile.values(str(config), "home")["targets"]
    assert [t.values["format"] for t in targets] == ["compose", "files", "systemd"]


def test_a_failed_post_command_puts_every_file_back(
    cli: Cli,
    encrypt: Callable[..., Path],
    tmp_path: Path,
    remote_dir: Path,
    sshd_server: Sshd,
    proxy: Proxy,
) -> None:
    """A files target whose post-command fails gets its previous files back (a new one is
    removed, a removed one returns) and the run exits 1."""
    secrets_dir = remote_dir / "secrets"
    secrets_dir.mkdir()
    flag = remote_dir / "fail"
    targets = (
        f"      - remote-path: {secrets_dir}\n        format: files\n"
        f"        post-command: test ! -e {flag}\n"
    )
    config = write_config(tmp_path, sshd_server, proxy.port, targets)
    env_args = ["--config", str(config), "--env", "home"]
    encrypt("OLD_ONE=old-value-1\nKEPT=kept-value-2\n")
    assert cli("deploy", *env_args).returncode == 0
    flag.write_text("")
    encrypt("KEPT=kept-value-3\nNEW_ONE=new-value-4\n")
    result = cli("deploy", *env_args)
    assert result.returncode == 1, result.output
    assert "restored the previous files" in result.output
    names = {p.name for p in secrets_dir.iterdir() if not p.name.startswith(".")}
    assert names == {"OLD_ONE", "KEPT"}
    assert (secrets_dir / "KEPT").read_bytes() == b"kept-value-2"
    manifest = json.loads((secrets_dir / ".sops-deploy-manifest").read_text())
    assert manifest["files"] == ["KEPT", "OLD_ONE"]
