"""Typed options per command, built from the values `inputs.resolve` returned.

The last step of the front door: the checks that join several options (a deploy needs
hosts and a remote path; `--port` and `--user` fill in hosts; `--source mirror` needs
`--mirror`), and the secrets from the environment `cli.main` was given. Commands get the
result and never see an argparse Namespace or the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sops_deploy.defaults import FILE_MODE
from sops_deploy.errors import UsageError
from sops_deploy.inputs import runinfo
from sops_deploy.inputs.environment import (
    age_source,
    child_environ,
    in_ci,
    secret,
    ssh_setup,
    tool_places,
)
from sops_deploy.inputs.settings import (
    BASTION_PARALLEL,
    DEFAULT_PARALLEL,
    FILES_MODE,
    HostSpec,
    Settings,
    Target,
    TargetEntry,
    check_remote_path,
    hosts_from,
)

if TYPE_CHECKING:  # the maintainer commands' records: imported by their builders below
    from sops_deploy.inputs import commandopts as records

REMOTE = ("deploy", "check", "diff")
Hosts = tuple[HostSpec, ...]


def settings(command: str, v: Mapping[str, Any], environ: Mapping[str, str]) -> Settings:
    """Settings for validate, deploy, check, diff (and doctor, with optional hosts)."""
    run = runinfo.from_environ(environ, child_environ(environ))
    common = _common(command, v, environ, run)
    if command == "validate":
        return Settings(**common, targets=targets(v))
    if command not in (*REMOTE, "doctor"):
        return Settings(**common)
    common["ssh"] = ssh_setup(environ, v["ssh_config"], run.user)
    hosts = hosts_from(v["hosts"], v["port"])
    if command == "doctor":
        return _doctor(common, v, environ, hosts)
    if not hosts:
        raise UsageError(
            "no host given",
            "pass --host user@server (repeatable), set the action input `host`, "
            "or pick an environment of sops-deploy.yaml with --env NAME",
        )
    built = _remote(common, v, environ, hosts)
    _check_server_operations(built)
    return built


def _common(
    command: str, v: Mapping[str, Any], environ: Mapping[str, str], run: runinfo.RunInfo
) -> dict[str, Any]:
    """What every command that reads the secrets takes: the source, its checks, the
    identity that decrypts it, the tools, who runs."""
    return {
        "command": command,
        "files": v["files"],
        "required": v["required"],
        "schema": v["schema"],
        "public_keys": v["public_keys"],
        "format": v["format"],
        "allow_empty": v.get("allow_empty", False),
        "interpolate": v.get("interpolate", "auto"),
        "age": age_source(environ, v["age_key_file"], v.get("ssh_key_file")),
        "export_env": v.get("export_env", ()),
        "tools": tool_places(environ),
        "run": run,
        "ci": in_ci(environ),
        "stores": _stores(v, environ),
    }


def _doctor(
    common: dict[str, Any], v: Mapping[str, Any], environ: Mapping[str, str], hosts: Hosts
) -> Settings:
    """doctor's hosts are optional, and it finds secrets/known_hosts by itself."""
    known = v["known_hosts"]
    if known is None and Path("secrets/known_hosts").is_file():
        known = "secrets/known_hosts"
    return Settings(
        **common,
        hosts=hosts,
        user=v["user"],
        remote_path=v["remote_path"],
        ssh_key=secret(environ, "SSH_PRIVATE_KEY"),
        ssh_key_file=v["ssh_key_file"],
        ssh_passphrase=secret(environ, "SSH_PRIVATE_KEY_PASSPHRASE"),
        known_hosts=known,
        fingerprints=v["fingerprints"],
        timeout=v["timeout"],
    )


def _remote(
    common: dict[str, Any], v: Mapping[str, Any], environ: Mapping[str, str], hosts: Hosts
) -> Settings:
    """deploy, check and diff: the connection, the targets, the deploy's safety settings."""
    safety = {
        name: v[name]
        for name in (
            "backup",
            "post_command",
            "post_command_timeout",
            "rollback_on_failure",
            "lock_timeout",
            "dry_run",
            "become",
            "become_sftp_server",
            "owner",
            "validate_command",
            "canary",
        )
        if name in v
    }
    listed = targets(v)
    return Settings(
        **common,
        targets=listed,
        hosts=hosts,
        user=v["user"],
        remote_path="" if listed else check_remote_path(v["remote_path"]),
        ssh_key=secret(environ, "SSH_PRIVATE_KEY"),
        ssh_key_file=v["ssh_key_file"],
        ssh_passphrase=secret(environ, "SSH_PRIVATE_KEY_PASSPHRASE"),
        known_hosts=v["known_hosts"],
        fingerprints=v["fingerprints"],
        insecure_any_host_key=v["insecure_any_host_key"],
        jump_host=v["jump_host"],
        file_mode=v["file_mode"] or (FILES_MODE if v["format"] == "files" else FILE_MODE),
        timeout=v["timeout"],
        retries=v["retries"],
        parallel=v["parallel"] or (BASTION_PARALLEL if v["jump_host"] else DEFAULT_PARALLEL),
        fail_fast=v["fail_fast"],
        follow_symlinks=v["follow_symlinks"],
        **safety,
    )


def _check_server_operations(built: Settings) -> None:
    """The combinations the server operations refuse (each option is valid alone)."""
    if built.become_sftp_server and not built.become:
        raise UsageError(
            "--become-sftp-server is only used with --become",
            "add --become, or drop --become-sftp-server",
        )
    for t in built.outputs():
        if t.format == "files" and (t.owner or t.validate_command):
            raise UsageError(
                f"--owner and --validate-command apply to one file; {t.remote_path} is a "
                "`files` directory (one file per key)",
                "drop --owner / --validate-command for that target (its files belong to the "
                "login user)",
            )


def _stores(v: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """Access to the stores that `vault://` / `aws-sm://` sources name (VAULT_* read here)."""
    if not any(f.startswith(("vault://", "aws-sm://")) for f in v["files"]):
        return None
    from sops_deploy.stores import source

    return source.access(v["files"], environ, v.get("timeout", 20.0), v.get("retries", 2))


def targets(v: Mapping[str, Any]) -> tuple[Target, ...]:
    """The environment's `targets:`, each field it leaves out taken from the environment
    (format, file-mode, backup); a `files` target's files are 0400 unless it says."""
    entries: tuple[TargetEntry, ...] = v.get("targets", ())
    if not entries:
        return ()
    if v.get("remote_path"):
        raise UsageError(
            "--remote-path cannot be combined with an environment that lists `targets:`",
            "drop --remote-path (SOPS_DEPLOY_REMOTE_PATH, the action's remote-path), or "
            "choose an environment without targets",
        )
    if v.get("post_command"):
        raise UsageError(
            "--post-command cannot be combined with an environment that lists `targets:`",
            "set `post-command:` on the target whose change it follows",
        )
    out = []
    for entry in entries:
        t = entry.values
        fmt = t.get("format", v["format"])
        if fmt == "raw":
            raise UsageError(
                "--format raw writes the whole decrypted file; it cannot be the format of "
                f"the target {t['remote_path']} (line {entry.line})",
                "give that target `format:` compose, dotenv, shell or files",
            )
        default_mode = v.get("file_mode") or (FILES_MODE if fmt == "files" else FILE_MODE)
        out.append(
            Target(
                remote_path=t["remote_path"],
                format=fmt,
                keys=t.get("keys", ()),
                file_mode=t.get("file_mode", default_mode),
                post_command=t.get("post_command"),
                owner=t.get("owner", v.get("owner")),
                validate_command=t.get("validate_command", v.get("validate_command")),
                backup=0 if fmt == "files" else t.get("backup", v.get("backup", 5)),
                line=entry.line,
            )
        )
    return tuple(out)


def hosts(v: Mapping[str, Any]) -> records.HostsOptions:
    from sops_deploy.inputs.commandopts import HostsOptions

    found = hosts_from(v["hosts"], v["port"], v["user"])
    if not found:
        raise UsageError("no host given", "pass --env NAME of sops-deploy.yaml, or --host")
    return HostsOptions(found, json=v["json"])


def tools(v: Mapping[str, Any], environ: Mapping[str, str]) -> records.ToolsOptions:
    from sops_deploy.inputs.commandopts import ToolsOptions

    source = v["source"]
    if source == "mirror":
        if not v["mirror"]:
            raise UsageError("--source mirror needs --mirror URL", "pass --mirror https://host")
        source = "release"
    names = ("sops", "age") if v["tool"] == "all" else (v["tool"],)
    return ToolsOptions(
        tools=names,
        source=source,
        places=tool_places(environ),
        mirror=v["mirror"],
        versions={t: v[f"{t}_version"] for t in names},
        sha256={t: v[f"{t}_sha256"] for t in names},
        allow_unverified=v["allow_unverified"],
    )


def init(v: Mapping[str, Any], environ: Mapping[str, str]) -> records.InitOptions:
    from sops_deploy.inputs.commandopts import InitOptions

    return InitOptions(
        root=Path.cwd(),
        from_env=Path(v["from_env"]) if v["from_env"] else None,
        host=v["pin_host"],
        remote_path=check_remote_path(v["remote_path"]),
        ssh_key_file=v["ssh_key_file"],
        ssh_recipient=_ssh_recipient(v["ssh_recipient"]),
        keys=_init_keys(v),
        age=age_source(environ, None),
        action_ref=v["action_ref"],
        force=v["force"],
        yes=v["yes"],
        delete_plaintext=v["delete_plaintext"],
        timeout=v["timeout"],
        tools=tool_places(environ),
        format=v["format"],
    )


def rotate(v: Mapping[str, Any], environ: Mapping[str, str]) -> records.RotateOptions:
    from sops_deploy.inputs.commandopts import RotateOptions

    return RotateOptions(
        files=v["files"],
        age=age_source(environ, v["age_key_file"]),
        tools=tool_places(environ),
        key=v["key"],
        generate=v["generate"],
        value_stdin=v["value_stdin"],
        data_key=v["data_key"],
        length=v["length"],
        charset=v["charset"],
    )


def recipients(v: Mapping[str, Any], environ: Mapping[str, str]) -> records.RecipientsOptions:
    from sops_deploy.inputs.commandopts import RecipientsOptions
    from sops_deploy.maintain import sopsconfig

    config = Path(v["sops_config"]) if v["sops_config"] else sopsconfig.find(Path.cwd())
    if config is None:
        raise UsageError(
            "no .sops.yaml here or in any parent directory",
            "run `sops-deploy init`, or pass --sops-config PATH (see docs/faq.md#faq-sopsyaml)",
        )
    return RecipientsOptions(
        recipient=v["recipient"],
        add=v["action"] == "add",
        sops_config=config,
        age=age_source(environ, v["age_key_file"]),
        tools=tool_places(environ),
    )


def doctor(v: Mapping[str, Any], environ: Mapping[str, str]) -> records.DoctorOptions:
    from sops_deploy.inputs.commandopts import DoctorOptions
    from sops_deploy.inputs.table import OPTIONS
    from sops_deploy.maintain import sopsconfig

    config = Path(v["sops_config"]) if v["sops_config"] else sopsconfig.find(Path.cwd())
    chosen = v["format"] is not None  # COMMAND_DEFAULTS: None when nothing named it
    resolved = {**v, "format": v["format"] or OPTIONS["format"].default}
    return DoctorOptions(settings("doctor", resolved, environ), config, chosen)


def github_sync(v: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """A `github.command.SyncRequest`: source settings, sync options, token and API base."""
    from sops_deploy.github import command
    from sops_deploy.github.client import DEFAULT_API

    return command.SyncRequest(
        settings=settings("github-sync", v, environ),
        options=command.options(v),
        token=command.token(environ),
        api_base=environ.get("GITHUB_API_URL") or DEFAULT_API,
    )


def store_sync(command: str, v: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """A `stores.command.StoreSyncRequest` (VAULT_* read here, at the front door)."""
    from sops_deploy.stores import command as store_command

    return store_command.request(command, v, environ, settings(command, v, environ))


def build(command: str, v: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """The typed options of `command` (see the dataclasses in `config.py`)."""
    if command in (*REMOTE, "validate"):
        return settings(command, v, environ)
    if command == "hosts":
        return hosts(v)
    if command in ("vault-sync", "aws-sync"):
        return store_sync(command, v, environ)
    builders = {
        "tools": tools,
        "init": init,
        "rotate": rotate,
        "recipients": recipients,
        "github-sync": github_sync,
    }
    if command in builders:
        return builders[command](v, environ)
    return doctor(v, environ)


def _init_keys(v: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """init's --age/--kms/--hc-vault-transit/--pgp keys, each checked to be of its kind."""
    from sops_deploy.maintain import masterkeys

    flags = (
        ("age", "age_recipients"),
        ("kms", "kms"),
        ("hc_vault_transit_uri", "hc_vault_transit"),
    )
    return tuple(
        (kind, masterkeys.check(kind, key))
        for kind, name in (*flags, ("pgp", "pgp"))
        for key in v.get(name) or ()
    )


def _ssh_recipient(text: str | None) -> str | None:
    """`--ssh-recipient`: a .pub file or the public key line itself, checked for sops."""
    if not text:
        return None
    from sops_deploy.sops import sshage

    line = text
    if not text.lstrip().startswith(("ssh-", "ecdsa-", "sk-")):
        try:
            line = Path(text).expanduser().read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"--ssh-recipient {text}: cannot read it ({getattr(exc, 'strerror', exc)})",
                "pass the deploy key's .pub file, or its `ssh-ed25519 AAAA…` line",
            ) from None
        if "PRIVATE KEY" in line:
            raise UsageError(
                f"--ssh-recipient {text} is a private key; it was not used",
                "pass the public half (the .pub file)",
            )
    return sshage.normalize(line)
