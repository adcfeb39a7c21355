"""ssh_config aliases resolve as OpenSSH resolves them: each case is checked against the
real `ssh -G` (OpenSSH's own parser) on the same config, not against hard-coded answers."""

from __future__ import annotations

import os
import pwd
import subprocess
from pathlib import Path

import pytest

from sops_deploy.errors import UsageError
from sops_deploy.ssh import sshconfig

PW_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)  # what `ssh` expands `~` and %d to
LOCAL_USER = pwd.getpwuid(os.getuid()).pw_name

BASIC = """\
# comment
Host homeserver
    HostName 10.0.0.5
    User deploy
    Port 2222
    IdentityFile ~/.ssh/deploy_ed25519
    ProxyJump bastion

Host *.example.com !secret.example.com
    User web
    IdentityFile /keys/%h_%r

Host bastion
    HostName bastion.example.com
    User jump

Host *
    User fallback
    Port=2200
    IdentityFile /keys/default
"""

MATCHES = """\
Match originalhost db? user admin
    HostName db-admin.internal
Match host "web*,!web9"
    Port 2022
Match exec "test -n '%h'"
    User byexec
Match all
    HostName last.internal
"""

FIRST_WINS = """\
Host a
    HostName first
Host a b
    HostName second
    User u1
Host *
    User u2
    HostName %h.lan
"""

AFTER_HOSTNAME = """\
Host probe
    HostName 127.0.0.1
Match host 127.0.0.1
    Port 2201
Match exec "test %h = 127.0.0.1"
    User byexec
"""

FINAL = """\
Host short
    HostName short.final.example
Match final host *.final.example
    User atfinal
"""


def ssh_g(config: Path, alias: str, user: str | None = None) -> dict[str, list[str]]:
    """What OpenSSH itself resolves for `alias` (ssh -G prints every option)."""
    target = f"{user}@{alias}" if user else alias
    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), target],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    seen: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        seen.setdefault(key, []).append(value)
    return seen


@pytest.mark.parametrize(
    ("text", "alias", "user"),
    [
        pytest.param(BASIC, "homeserver", None, id="alias-all-keywords"),
        pytest.param(BASIC, "HomeServer", None, id="alias-case-insensitive"),
        pytest.param(BASIC, "app.example.com", None, id="wildcard-with-tokens"),
        pytest.param(BASIC, "secret.example.com", None, id="negated-pattern"),
        pytest.param(BASIC, "unknown", None, id="only-host-star"),
        pytest.param(MATCHES, "db1", "admin", id="match-originalhost-user"),
        pytest.param(MATCHES, "db1", "other", id="match-user-fails"),
        pytest.param(MATCHES, "web1", None, id="match-host-list"),
        pytest.param(MATCHES, "web9", None, id="match-host-negated"),
        pytest.param(FIRST_WINS, "a", None, id="first-value-wins"),
        pytest.param(FIRST_WINS, "b", None, id="hostname-token"),
        pytest.param(FIRST_WINS, "zz", None, id="hostname-percent-h"),
        pytest.param(FINAL, "short", None, id="match-final"),
        pytest.param(AFTER_HOSTNAME, "probe", None, id="match-sees-hostname"),
    ],
)
def test_resolution_agrees_with_ssh_G(tmp_path: Path, text: str, alias: str, user: str | None):
    """HostName, User, Port, IdentityFile and ProxyJump are what `ssh -G` says."""
    config = tmp_path / "config"
    config.write_text(text)
    ours = sshconfig.resolve(
        alias, config, home=PW_HOME, env={"PATH": os.defpath}, local_user=LOCAL_USER, user=user
    )
    real = ssh_g(config, alias, user)
    assert ours.hostname == real["hostname"][0]
    assert (user or ours.user or LOCAL_USER) == real["user"][0]
    assert (ours.port or 22) == int(real["port"][0])
    if ours.identity_files:  # without any, ssh -G lists its defaults instead
        # ssh -G prints IdentityFile before expansion; expand with ssh's own %h and %r
        shown = [
            (str(PW_HOME) + f[1:] if f.startswith("~/") else f)
            .replace("%h", real["hostname"][0])
            .replace("%r", real["user"][0])
            for f in real["identityfile"]
        ]
        assert list(ours.identity_files) == shown
    assert ours.proxy_jump == real.get("proxyjump", [None])[0]


def test_include_is_followed_relative_to_dot_ssh(tmp_path: Path) -> None:
    """`Include conf.d/*` reads the files under ~/.ssh, in the enclosing block's scope."""
    ssh_dir = tmp_path / ".ssh"
    (ssh_dir / "conf.d").mkdir(parents=True)
    (ssh_dir / "conf.d" / "10-home").write_text("Host homeserver\n  HostName 192.0.2.7\n")
    (ssh_dir / "config").write_text("Include conf.d/*\nHost *\n  HostName never\n")
    found = sshconfig.resolve(
        "homeserver", ssh_dir / "config", home=tmp_path, env={}, local_user="me"
    )
    assert found.hostname == "192.0.2.7"
    assert found.settings[0].origin.endswith("10-home line 2")


def test_match_exec_runs_only_when_reached(tmp_path: Path) -> None:
    """`Match exec` runs its command (with the given environment) only for a config that has
    one and only when the earlier criteria hold."""
    marker = tmp_path / "ran"
    config = tmp_path / "config"
    config.write_text(
        f'Match host other exec "touch {marker}"\n  User nobody\n'
        f'Match exec "test \\"$MODE\\" = ci"\n  User ci\n'
    )
    ci = sshconfig.resolve("h", config, home=tmp_path, env={"MODE": "ci"}, local_user="me")
    local = sshconfig.resolve("h", config, home=tmp_path, env={"MODE": "x"}, local_user="me")
    assert (ci.user, local.user) == ("ci", None)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("option", "expected"),
    [
        pytest.param("none", None, id="none-disables"),
        pytest.param("NONE", None, id="none-any-case"),
        pytest.param(None, "default", id="default-when-present"),
    ],
)
def test_config_path(tmp_path: Path, option: str | None, expected: str | None) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("Host x\n")
    path = sshconfig.config_path(option, tmp_path)
    assert (path is None) == (expected is None)


def test_missing_config_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--ssh-config .*no such file") as info:
        sshconfig.config_path(str(tmp_path / "absent"), tmp_path)
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("Host h\n  Port 99999\n", "line 2: Port '99999'", id="bad-port"),
        pytest.param("Host h\n  ProxyCommand nc %h %p\n", "line 2: ProxyCommand", id="proxycmd"),
        pytest.param('Host h\n  HostName "x\n', "line 2: unbalanced quotes", id="quote"),
    ],
)
def test_bad_config_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "config"
    config.write_text(text)
    with pytest.raises(UsageError, match=message) as info:
        sshconfig.resolve("h", config, home=tmp_path, env={}, local_user="me")
    assert str(config) in info.value.message


def test_no_config_means_the_name_itself(tmp_path: Path) -> None:
    found = sshconfig.resolve("Example.COM", None, home=tmp_path, env={}, local_user="me")
    assert (found.hostname, found.port, found.user, found.changed) == (
        "example.com",
        None,
        None,
        False,
    )


ROUTES = """\
Host homeserver
    HostName 10.0.0.5
    User deploy
    Port 2222
    ProxyJump jumper
Host jumper
    HostName 192.0.2.1
    Port 2200
    User hop
Host twohops
    ProxyJump a,b
Host loop
    ProxyJump homeserver
"""


@pytest.mark.parametrize(
    ("host", "user", "jump", "expected"),
    [
        pytest.param("homeserver", None, None, ("deploy@10.0.0.5:2222", "hop@192.0.2.1:2200"),
                     id="config-everything"),
        pytest.param("root@homeserver:22", None, None, ("root@10.0.0.5:22", "hop@192.0.2.1:2200"),
                     id="command-line-user-and-port-win"),
        pytest.param("homeserver", "ci", None, ("ci@10.0.0.5:2222", "ci@192.0.2.1:2200"),
                     id="user-flag-beats-config-user"),
        pytest.param("homeserver", None, "jumper:22", ("deploy@10.0.0.5:2222", "hop@192.0.2.1:22"),
                     id="jump-host-flag-beats-proxyjump"),
        pytest.param("plain.example", None, None, ("plain.example:22", None), id="no-block"),
    ],
)  # fmt: skip
def test_route_applies_the_config_under_the_command_line(
    tmp_path: Path, host: str, user: str | None, jump: str | None, expected: tuple[str, ...]
) -> None:
    from sops_deploy.inputs.settings import parse_host
    from sops_deploy.ssh.route import SshSetup, route

    config = tmp_path / "config"
    config.write_text(ROUTES)
    setup = SshSetup(config, tmp_path, {}, "me")
    spec = parse_host(host)
    found = route(
        spec,
        setup,
        port_given=":" in host,
        user=user,
        jump=parse_host(jump) if jump else None,
        jump_port_given=jump is not None and ":" in jump,
    )
    assert (str(found.target), str(found.jump) if found.jump else None) == expected


@pytest.mark.parametrize(
    ("host", "message"),
    [
        pytest.param("twohops", "more than one hop", id="two-hops"),
        pytest.param("loop", "has its own ProxyJump", id="jump-has-a-jump"),
    ],
)
def test_route_follows_one_hop_only(tmp_path: Path, host: str, message: str) -> None:
    from sops_deploy.inputs.settings import parse_host
    from sops_deploy.ssh.route import SshSetup, route

    config = tmp_path / "config"
    config.write_text(ROUTES)
    with pytest.raises(UsageError, match=message) as info:
        route(parse_host(host), SshSetup(config, tmp_path, {}, "me"), port_given=False)
    assert f"{config} line" in info.value.message


def test_route_describes_each_value_with_its_line(tmp_path: Path) -> None:
    """What `doctor` prints: every value the config gave, with its file and line."""
    from sops_deploy.inputs.settings import parse_host
    from sops_deploy.ssh.route import SshSetup, route

    config = tmp_path / "config"
    config.write_text(ROUTES)
    shown = route(parse_host("homeserver"), SshSetup(config, tmp_path, {}, "me"), port_given=False)
    text = shown.describe()
    assert f"HostName 10.0.0.5 ({config} line 2)" in text
    assert f"ProxyJump jumper ({config} line 5)" in text
    assert f"jump host jumper: HostName 192.0.2.1 ({config} line 7)" in text
