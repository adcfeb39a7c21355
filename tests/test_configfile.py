"""sops-deploy.yaml: environments load into settings; every mistake is reported at its line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from sops_deploy.cli import build_parser, options_for
from sops_deploy.errors import UsageError
from sops_deploy.inputs import configfile
from sops_deploy.inputs.settings import HostSpec, Settings
from tests.support import CliResult

GOOD = """\
version: 1
defaults:
  known-hosts: keys/known_hosts
  user: deploy
  parallel: 4
environments:
  staging:
    files: common.env.encrypted
    hosts: [staging.example.com]
    remote-path: /srv/app/.env
  production:
    files:
      - common.env.encrypted
      - production.env.encrypted
    hosts:
      - web1.example.com
      - ops@web2.example.com:2222
    remote-path: /srv/app/.env
    format: dotenv
    file-mode: 0640
    post-command: docker compose up -d
    backup: 3
    required: [DATABASE_URL, API_TOKEN]
    host-key-fingerprints: [SHA256:abc, SHA256:def]
    fail-fast: true
    timeout: 7.5
"""


def settings(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> Settings:
    """Settings exactly as `sops-deploy ARGV` would build them (no network involved)."""
    config = tmp_path / "conf" / "sops-deploy.yaml"
    if not config.exists():
        config.parent.mkdir(exist_ok=True)
        config.write_text(GOOD)
    args = build_parser().parse_args([argv[0], "--config", str(config), *argv[1:]])
    built = options_for(args.command, vars(args), env or {})
    assert isinstance(built, Settings)
    return built


def test_environment_becomes_settings(tmp_path: Path) -> None:
    """Every field of the environment (and of `defaults`) reaches Settings, paths resolved."""
    s = settings(tmp_path, "deploy", "--env", "production")
    base = tmp_path / "conf"
    assert s.files == (str(base / "common.env.encrypted"), str(base / "production.env.encrypted"))
    assert s.hosts == (
        HostSpec("web1.example.com", 22, None),
        HostSpec("web2.example.com", 2222, "ops"),
    )
    assert s.user == "deploy"
    assert s.known_hosts == str(base / "keys/known_hosts")
    assert (s.remote_path, s.format, s.file_mode) == ("/srv/app/.env", "dotenv", 0o640)
    assert s.required == ("DATABASE_URL", "API_TOKEN")
    assert s.fingerprints == ("SHA256:abc", "SHA256:def")
    assert (s.parallel, s.fail_fast, s.timeout) == (4, True, 7.5)


def test_backup_and_post_command_reach_the_settings(tmp_path: Path) -> None:
    """`backup` and `post-command` load as typed values and reach the deploy's Settings."""
    config = tmp_path / "sops-deploy.yaml"
    config.write_text(GOOD)
    values = configfile.values(str(config), "production")
    assert values["backup"] == 3
    assert values["post_command"] == "docker compose up -d"
    s = settings(tmp_path, "deploy", "--env", "production")
    assert (s.backup, s.post_command) == (3, "docker compose up -d")


@pytest.mark.parametrize(
    ("argv", "env", "expect"),
    [
        pytest.param(["--parallel", "2"], {}, 2, id="flag-over-file"),
        pytest.param([], {"SOPS_DEPLOY_PARALLEL": "3"}, 3, id="env-over-file"),
        pytest.param(["--parallel", "2"], {"SOPS_DEPLOY_PARALLEL": "3"}, 2, id="flag-over-env"),
        pytest.param([], {"SOPS_DEPLOY_PARALLEL": ""}, 4, id="blank-input-keeps-file"),
        pytest.param([], {}, 4, id="file-over-default"),
    ],
)
def test_precedence(tmp_path: Path, argv: list[str], env: dict[str, str], expect: int) -> None:
    """Flags beat SOPS_DEPLOY_* (action inputs), which beat the file, which beats defaults."""
    assert settings(tmp_path, "check", "--env", "production", *argv, env=env).parallel == expect


def test_environment_from_the_action_input(tmp_path: Path) -> None:
    """SOPS_DEPLOY_ENVIRONMENT (the action's `environment` input) picks the environment."""
    s = settings(tmp_path, "deploy", env={"SOPS_DEPLOY_ENVIRONMENT": "staging"})
    assert s.hosts == (HostSpec("staging.example.com", 22, None),)
    assert s.files == (str(tmp_path / "conf" / "common.env.encrypted"),)


def test_without_env_only_defaults_apply(tmp_path: Path) -> None:
    """No --env: the defaults apply, no environment's hosts are picked silently."""
    with pytest.raises(UsageError, match="no host given"):
        settings(tmp_path, "deploy")
    s = settings(tmp_path, "deploy", "--host", "h.example.com", "--remote-path", "/x/.env")
    assert s.user == "deploy"


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: /x\n    colour: red\n",
            5,
            "unknown key `colour`",
            id="unknown-key",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: /x\n    parallel: many\n",
            5,
            "`parallel` must be a whole number",
            id="wrong-type-int",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: /x\n    timeout: .nan\n",
            5,
            "`timeout: .nan` is not a finite number",
            id="timeout-nan",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: /x\n    port: 70000\n",
            5,
            "`port: 70000` must be at most 65535",
            id="port-too-big",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts:\n      a: b\n    remote-path: /x\n",
            4,
            "`hosts` must be a string, not a mapping",
            id="wrong-type-hosts",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: 42\n",
            4,
            "`remote-path` must be a string",
            id="wrong-type-str",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: /x\n    fail-fast: maybe\n",
            5,
            "`fail-fast` must be true or false",
            id="wrong-type-bool",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n\n  staging:\n    hosts: [b]\n"
            "    remote-path: /x\n",
            2,
            "environment `prod` has no `remote-path`",
            id="missing-field",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts:\n      - good.example.com\n      - bad host!\n"
            "    remote-path: /x\n",
            5,
            "is not [user@]host[:port]",
            id="bad-host",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: /x\n    file-mode: 0644\n",
            5,
            "readable by every user",
            id="world-readable-mode",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: relative/.env\n",
            4,
            "must be absolute",
            id="relative-remote-path",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: /x\n    format: toml\n",
            5,
            "is not one of",
            id="bad-format",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: /x\n    hosts: [b]\n",
            5,
            "`hosts` appears twice (first on line 3)",
            id="duplicate-key",
        ),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a]\n    remote-path: /x\n    parallel: 0\n",
            5,
            "must be at least 1",
            id="parallel-zero",
        ),
        pytest.param(
            "version: 1\nprod:\n  hosts: [a]\n", 2, "unknown top-level key `prod`", id="top-level"
        ),
        pytest.param("version: 1\n", 1, "no `environments:`", id="no-environments"),
        pytest.param(
            "environments:\n  prod:\n    hosts: [a\n    remote-path: /x\n",
            4,
            "not valid YAML",
            id="yaml-syntax",
        ),
        pytest.param("environments: [prod]\n", 1, "must be a mapping", id="environments-list"),
        pytest.param("", 1, "the file is empty", id="empty"),
    ],
)
def test_errors_point_at_the_yaml_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    """Each mistake is a UsageError (exit 2) naming file:line and what to write instead."""
    config = tmp_path / "sops-deploy.yaml"
    config.write_text(text)
    with pytest.raises(UsageError) as caught:
        configfile.load(str(config))
    assert caught.value.exit_code == 2
    assert caught.value.message.startswith(f"{config}:{line}: "), caught.value.message
    assert words in caught.value.message
    assert (caught.value.file, caught.value.line) == (str(config), line)
    assert caught.value.hint


def test_unknown_environment_lists_the_known_ones(tmp_path: Path) -> None:
    """--env with a name the file lacks says which names exist."""
    with pytest.raises(UsageError, match=r"no environment 'prod' \(environments: staging, "):
        settings(tmp_path, "deploy", "--env", "prod")


def test_env_without_a_config_file_is_a_usage_error(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """--env when no sops-deploy.yaml exists exits 2 and says where the file is looked for."""
    result = cli("hosts", "--env", "production")
    assert result.returncode == 2
    assert "secrets/sops-deploy.yaml does not exist" in result.stderr


def test_default_config_location_and_cli_error_line(
    cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    """secrets/sops-deploy.yaml is found without --config; its errors reach the CLI as file:line."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "sops-deploy.yaml").write_text(GOOD)
    listed = cli("hosts", "--env", "production")
    assert listed.returncode == 0, listed.output
    assert listed.stdout.split() == ["deploy@web1.example.com:22", "ops@web2.example.com:2222"]

    (secrets / "sops-deploy.yaml").write_text(GOOD.replace("    backup: 3", "    backup: -1"))
    broken = cli("deploy", "--env", "production")
    assert broken.returncode == 2
    assert "secrets/sops-deploy.yaml:22: `backup: -1` must not be negative" in broken.stderr
    assert "write `backup: 5`" in broken.stderr
