"""The front door: one table resolves every option (flag > SOPS_DEPLOY_* > sops-deploy.yaml
> default) for every command, and child processes get an environment without secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sops_deploy.cli import build_parser, main, options_for
from sops_deploy.errors import UsageError
from sops_deploy.inputs import table
from sops_deploy.inputs.settings import (
    DoctorOptions,
    HostsOptions,
    HostSpec,
    Settings,
    ToolsOptions,
)


def built(argv: list[str], environ: dict[str, str] | None = None) -> Any:
    args = build_parser().parse_args(argv)
    return options_for(args.command, vars(args), environ or {})


def test_every_option_of_every_command_is_a_row_of_the_table() -> None:
    """Commands name only options the table has; each YAML key names one option."""
    for command, names in table.COMMANDS.items():
        assert set(names) <= set(table.OPTIONS), command
    assert len(table.YAML_FIELDS) == len({o.attr for o in table.YAML_FIELDS.values()})
    assert all(o.kind in table.KINDS for o in table.OPTIONS.values())


@pytest.mark.parametrize(
    ("argv", "environ", "expect"),
    [
        pytest.param(["--timeout", "3"], {"SOPS_DEPLOY_TIMEOUT": "4"}, 3.0, id="flag-wins"),
        pytest.param([], {"SOPS_DEPLOY_TIMEOUT": "4"}, 4.0, id="env-over-default"),
        pytest.param([], {"SOPS_DEPLOY_TIMEOUT": ""}, 20.0, id="blank-env-is-unset"),
        pytest.param([], {}, 20.0, id="default"),
    ],
)
def test_precedence_for_a_number(argv: list[str], environ: dict[str, str], expect: float) -> None:
    """--timeout, then SOPS_DEPLOY_TIMEOUT, then the default, typed as a float."""
    s = built(["deploy", "--host", "h", "--remote-path", "/x/.env", *argv], environ)
    assert isinstance(s, Settings)
    assert s.timeout == expect


def test_doctor_honours_port_and_the_environment_for_hosts() -> None:
    """doctor reads hosts from SOPS_DEPLOY_HOST and applies --port like deploy does."""
    d = built(["doctor", "--port", "2222"], {"SOPS_DEPLOY_HOST": "a.example, b@c.example:22"})
    assert isinstance(d, DoctorOptions)
    assert d.settings.hosts == (HostSpec("a.example", 2222), HostSpec("c.example", 22, "b"))


def test_hosts_and_tools_get_typed_options() -> None:
    """hosts fills --user into hosts without one; tools maps --source mirror to release."""
    h = built(["hosts", "--user", "ops"], {"SOPS_DEPLOY_HOST": "x.example:2200"})
    assert isinstance(h, HostsOptions)
    assert h.hosts == (HostSpec("x.example", 2200, "ops"),)
    t = built(
        ["tools", "install", "all", "--source", "mirror", "--mirror", "http://127.0.0.1:9"],
        {"RUNNER_TOOL_CACHE": "/tc", "SOPS_DEPLOY_SOPS_VERSION": "3.9.0"},
    )
    assert isinstance(t, ToolsOptions)
    assert (t.tools, t.source, t.places.cache) == (
        ("sops", "age"),
        "release",
        Path("/tc/sops-deploy"),
    )
    assert t.versions == {"sops": "3.9.0", "age": None}


def test_a_bad_variable_is_named_and_other_commands_ignore_it() -> None:
    """A garbage SOPS_DEPLOY_RETRIES fails deploy naming the variable; validate has no
    --retries, so it never reads it."""
    with pytest.raises(UsageError, match="SOPS_DEPLOY_RETRIES='many' is not a number"):
        built(["check", "--host", "h", "--remote-path", "/x/.env"], {"SOPS_DEPLOY_RETRIES": "many"})
    assert isinstance(built(["validate"], {"SOPS_DEPLOY_RETRIES": "many"}), Settings)


def test_children_get_no_secret_they_do_not_need() -> None:
    """sops gets its identity but not the SSH key; git (RunInfo) and tools get neither."""
    environ = {
        "PATH": "/usr/bin",
        "AGE_KEY": "AGE-SECRET-KEY-1TEST",
        "SSH_PRIVATE_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----",
        "SSH_PRIVATE_KEY_PASSPHRASE": "pass-phrase",
        "GITHUB_TOKEN": "ghs_token",
        "SOPS_DEPLOY_REMOTE_PATH": "/x/.env",
        "SOPS_DEPLOY_HOST": "h",
        "GITHUB_ACTOR": "octocat",
    }
    s = built(["deploy"], environ)
    assert isinstance(s, Settings)
    sops_env = s.age.child_env()
    assert sops_env["SOPS_AGE_KEY"] == "AGE-SECRET-KEY-1TEST"
    assert sops_env["PATH"] == "/usr/bin"
    assert not {"AGE_KEY", "SSH_PRIVATE_KEY", "SSH_PRIVATE_KEY_PASSPHRASE", "GITHUB_TOKEN"} & set(
        sops_env
    )
    assert s.run is not None
    assert s.run.actor == "octocat"
    for child in (s.run.child_env, s.tools.env):
        assert child == {"PATH": "/usr/bin", "GITHUB_ACTOR": "octocat"}
    assert s.ssh_key == environ["SSH_PRIVATE_KEY"]


def test_main_takes_its_environment_as_an_argument(capsys: pytest.CaptureFixture[str]) -> None:
    """main(argv, environ) reads the mapping it is given, not the process environment."""
    code = main(["hosts"], {"SOPS_DEPLOY_HOST": "given.example:2022"})
    assert code == 0
    assert capsys.readouterr().out.split() == ["given.example:2022"]
    assert main(["hosts"], {}) == 2
    assert "no host given" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "environ", "expect"),
    [
        ([], {}, 32),  # a fleet's network waits overlap
        (["--jump-host", "bastion.example.com"], {}, 10),  # sshd's MaxStartups starts at 10
        (["--jump-host", "bastion.example.com", "--parallel", "40"], {}, 40),
        ([], {"SOPS_DEPLOY_PARALLEL": "3"}, 3),
    ],
)
def test_default_parallelism_suits_fleets_and_bastions(
    argv: list[str], environ: dict[str, str], expect: int
) -> None:
    base = ["deploy", "--host", "h1.example.com", "--remote-path", "/srv/.env"]
    assert built([*base, *argv], environ).parallel == expect
