"""The front door: every argparse parser, and `main`, the one error boundary.

`main(argv, environ)` parses the command line, resolves every input once
(`inputs.resolve`: flags > `SOPS_DEPLOY_*` / action inputs > sops-deploy.yaml >
defaults, then `options.build` into typed options), and runs the command with a Reporter.
It is the only place that reads `os.environ` and the only place that turns an exception
into a message and an exit code (0 ok · 1 runtime · 2 usage · 3 drift · 4 validation ·
5 decryption · 130 interrupted). The parsers are built from the table in `inputs.py`; this
module imports nothing at its top but the version, so `--version` answers before even
argparse is loaded, and `--help` before any YAML, crypto or SSH library.
"""

from __future__ import annotations

import os
import sys

from sops_deploy import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from sops_deploy.interrupt import Cancel
    from sops_deploy.output.reporter import Reporter

VERSION = f"sops-deploy {__version__}"

EPILOG = """\
secrets come from the environment, never from flags:
  AGE_KEY (or SOPS_AGE_KEY / SOPS_AGE_KEY_FILE)   the age private key
  SSH_PRIVATE_KEY, SSH_PRIVATE_KEY_PASSPHRASE     the SSH key (or --ssh-key-file)
every flag can also be set as SOPS_DEPLOY_<FLAG>, e.g. SOPS_DEPLOY_REMOTE_PATH.
exit codes: 0 ok, 1 runtime failure, 2 usage, 3 drift (check), 4 validation, 5 decryption
"""


HOSTS_EPILOG = """\
--json prints a list for a GitHub Actions matrix, one object per host:
  [{"host": "deploy@web1.example.com:22", "name": "web1.example.com"}, ...]
  strategy: {matrix: {include: ${{ fromJSON(needs.plan.outputs.hosts) }}}}
then deploy one host per job with: --env NAME --host "${MATRIX_HOST}"
"""

GITHUB_EPILOG = """\
the token comes from GH_TOKEN or GITHUB_TOKEN only (never a flag); the API base from
GITHUB_API_URL (default https://api.github.com). Public keys (stored unencrypted by sops,
or `secret: false` in schema.yaml) become Actions variables. Nothing is deleted that
sops-deploy did not create. exit 3 with --check when GitHub differs from the file.
"""

KEY_EPILOG = """\
the age key comes from AGE_KEY (or SOPS_AGE_KEY / SOPS_AGE_KEY_FILE) or --age-key-file,
e.g. AGE_KEY="$(cat secrets/age-key.txt)" sops-deploy ...
"""

_NARGS = {"tool": "?", "key": "?"}  # optional positionals
_ALIASES = {"yes": ("-y",)}

if TYPE_CHECKING:
    Group = argparse.ArgumentParser | argparse._ArgumentGroup | argparse._MutuallyExclusiveGroup


def _add(group: Group, *names: str) -> None:
    """One argument per option of the table: flag, kind, help and metavar from its row."""
    import argparse

    from sops_deploy.inputs.table import OPTIONS

    for name in names:
        o = OPTIONS[name]
        kw: dict[str, Any] = {"help": o.help}
        if o.metavar:
            kw["metavar"] = o.metavar
        if o.choices:
            kw["choices"] = o.choices
        if o.flag is None:
            if name in _NARGS:
                kw.update(nargs=_NARGS[name], default=None)
            group.add_argument(name, **kw)
            continue
        kw["dest"] = name
        kw["default"] = None  # None: not given, so the environment and the file may fill it
        if o.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction if o.negatable else "store_true"
            kw.pop("metavar", None)
        elif o.kind == "list":
            kw["action"] = "append"
        elif o.kind == "int":
            kw["type"] = int
        elif o.kind == "number":
            kw["type"] = float
        group.add_argument(*_ALIASES.get(name, ()), o.flag, **kw)


def _sub(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    text: str,
    epilog: str | None = EPILOG,
    **kw: Any,
) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, epilog=epilog, formatter_class=_formatter, **kw)


def _formatter(prog: str) -> argparse.HelpFormatter:
    """argparse's RawDescriptionHelpFormatter at the width argparse would choose, found as
    `shutil.get_terminal_size` finds it but without importing shutil (and with it zlib, bz2
    and lzma: 7 modules `validate` never uses)."""
    import argparse

    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return argparse.RawDescriptionHelpFormatter(prog, width=(columns or 80) - 2)


def _remote_parser(p: argparse.ArgumentParser) -> None:
    from sops_deploy.inputs.table import CONFIG, SOURCE, TARGET

    _add(p.add_argument_group("target"), *TARGET)
    _add(p.add_argument_group("source"), *SOURCE)
    _add(p.add_argument_group("config file"), *CONFIG)


def build_parser() -> argparse.ArgumentParser:
    """Every command's parser, built from the option table (`inputs.OPTIONS`)."""
    import argparse  # here, not at the top: `--version` answers without it

    from sops_deploy.inputs.table import CONFIG, GITHUB_SYNC, SAFETY, SOURCE, TOOLS

    parser = argparse.ArgumentParser(
        prog="sops-deploy",
        description="Decrypt a SOPS + age encrypted .env, prove it complete, and write it "
        "atomically to your servers over SFTP.",
        epilog=EPILOG,
        formatter_class=_formatter,
    )
    parser.add_argument("--version", action="version", version=VERSION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    deploy = _sub(sub, "deploy", "write the secrets to every host")
    _remote_parser(deploy)
    _add(deploy.add_argument_group("deploy"), "dry_run", *SAFETY)
    _add(deploy, "export_env")
    _remote_parser(_sub(sub, "check", "exit 3 if any host differs (names keys, never values)"))
    _remote_parser(_sub(sub, "diff", "show added/removed/changed keys per host, never values"))
    validate = _sub(sub, "validate", "decrypt, lint and check the secrets; no network")
    _add(validate.add_argument_group("source"), *SOURCE)
    _add(validate.add_argument_group("config file"), *CONFIG)
    _add(validate, "export_env")

    hosts = _sub(
        sub,
        "hosts",
        "list the hosts of an environment (--json for a GitHub strategy.matrix)",
        HOSTS_EPILOG,
    )
    _add(hosts, "json", "hosts", "user", "port")
    _add(hosts.add_argument_group("config file"), *CONFIG)

    sync = _sub(
        sub,
        "github-sync",
        "sync the secrets into GitHub Actions secrets and variables",
        GITHUB_EPILOG + EPILOG,
    )
    _add(sync.add_argument_group("source"), *SOURCE)
    _add(sync.add_argument_group("config file"), *CONFIG)
    _add(sync.add_argument_group("github"), *GITHUB_SYNC)
    _store_parsers(sub)

    tools = sub.add_parser(
        "tools", help="manage the sops and age binaries", formatter_class=_formatter
    )
    tsub = tools.add_subparsers(dest="tools_command", metavar="ACTION", required=True)
    _add(
        tsub.add_parser(
            "install",
            help="install pinned, verified sops/age into the user cache",
            formatter_class=_formatter,
        ),
        *TOOLS,
    )
    _maintainer_parsers(sub)
    return parser


STORE_EPILOG = """\
one secret holds every selected key; a rerun with nothing changed writes nothing; a key
left out of the file is removed from the secret. A secret sops-deploy did not create is
refused (--adopt takes it over). exit 3 with --check when the secret differs.
"""
VAULT_EPILOG = "Vault/OpenBao from VAULT_ADDR, VAULT_TOKEN, VAULT_NAMESPACE (never flags).\n"
AWS_EPILOG = "AWS credentials and region the standard way (AWS_*, profiles, roles).\n"


def _store_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sops_deploy.inputs.table import CONFIG, SOURCE
    from sops_deploy.stores.options import STORE_SYNC

    for name, what, own, epilog in (
        ("vault-sync", "a Vault/OpenBao KV v2 secret", ("store_path",), VAULT_EPILOG),
        ("aws-sync", "an AWS Secrets Manager secret", ("store_name", "kms_key_id", "retries"),
         AWS_EPILOG),
    ):  # fmt: skip
        p = _sub(sub, name, f"sync the secrets into {what}", epilog + STORE_EPILOG + EPILOG)
        _add(p.add_argument_group("source"), *SOURCE)
        _add(p.add_argument_group("config file"), *CONFIG)
        _add(p.add_argument_group(name.removesuffix("-sync")), *own, *STORE_SYNC[:-1])


def _maintainer_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sops_deploy.inputs.table import SOURCE

    init = _sub(
        sub,
        "init",
        "set up a repository: age key, .sops.yaml, encrypted .env, pinned host, workflow",
        None,
        description="Set up this directory (a git repository root) for sops-deploy and print "
        "the exact next steps. Never overwrites without --force; never replaces an existing "
        "secrets/age-key.txt. --yes answers every prompt but keeps the --from plaintext unless "
        "--delete-plaintext is given.",
    )
    _add(
        init,
        "from_env",
        "pin_host",
        "remote_path",
        "ssh_key_file",
        "ssh_recipient",
        "action_ref",
        "force",
    )
    _add(init, "age_recipients", "kms", "hc_vault_transit", "pgp")
    _add(init, "yes", "delete_plaintext", "timeout", "format")

    rotate = _sub(
        sub,
        "rotate",
        "change one value, or the data key, without plaintext",
        KEY_EPILOG,
        description="Set KEY to a new value inside the encrypted file through "
        "`sops set --value-stdin`: no plaintext file, no value on a command line or in output.",
    )
    _add(rotate, "key")
    _add(rotate.add_mutually_exclusive_group(required=True), "generate", "value_stdin", "data_key")
    _add(rotate, "length", "charset", "files", "age_key_file")

    recipients = _sub(
        sub,
        "recipients",
        "add or remove a recipient (age, KMS, transit, PGP), re-key files",
        KEY_EPILOG,
        description="Edit the master keys (age recipient, AWS KMS ARN, Vault/OpenBao transit "
        "URI, PGP fingerprint: told apart by their form) of every rule in .sops.yaml, then "
        "re-key every "
        "file the rules match (`sops updatekeys -y`; on remove, a new data key first).",
    )
    _add(recipients, "action", "recipient", "sops_config", "age_key_file")

    doctor = _sub(
        sub,
        "doctor",
        "check tools, keys, files and hosts; ✓/✗ with fixes",
        KEY_EPILOG,
        description="One ✓/✗ line per check, each ✗ with its fix. Exit 0 when every check "
        "passes, 1 when any fails.",
    )
    _add(doctor.add_argument_group("source"), *SOURCE)
    _add(doctor, "sops_config")
    hosts = doctor.add_argument_group("hosts")
    _add(hosts, "hosts", "user", "port", "remote_path", "ssh_key_file", "known_hosts")
    _add(hosts, "fingerprints", "timeout")


def _file_values(path: str, name: str | None) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    from sops_deploy.inputs import configfile  # YAML is loaded only when a config file is used

    return configfile.layer(path, name)


def options_for(command: str, flags: Mapping[str, Any], environ: Mapping[str, str]) -> Any:
    """The typed options of a parsed command line: every input resolved, once."""
    from sops_deploy.inputs import options, precedence

    resolved = precedence.resolve(command, flags, environ, _file_values)
    return options.build(command, resolved.values, environ)


def _run(
    command: str,
    flags: Mapping[str, Any],
    environ: Mapping[str, str],
    r: Reporter,
    cancel: Cancel | None = None,
) -> None:
    from sops_deploy.inputs.environment import secret_texts
    from sops_deploy.inputs.settings import Settings

    if command not in ("tools", "hosts"):
        # Key material and backend credentials are masked before anything else can print.
        r.mask_keys(secret_texts(environ))
    opts = options_for(command, flags, environ)
    if isinstance(opts, Settings):
        r.mask_keys(opts.secret_texts())
        r.keep_readable(opts.public_texts())
    if command == "github-sync":
        from sops_deploy.github.command import cmd_github_sync

        cmd_github_sync(opts, r)
        return
    if command in ("vault-sync", "aws-sync"):
        from sops_deploy.stores.command import cmd_store_sync

        cmd_store_sync(opts, r)
        return
    if command in ("init", "rotate", "recipients", "doctor"):
        from sops_deploy import maintain

        getattr(maintain, f"run_{command}")(opts, r)
        return
    from sops_deploy import commands

    if command in ("deploy", "check", "diff"):
        commands.cmd_remote(opts, r, cancel)  # the run's cancel token goes to every host
        return
    run: Callable[[Any, Reporter], None] = {
        "validate": commands.cmd_validate,
        "hosts": commands.cmd_hosts,
        "tools": commands.cmd_tools,
    }[command]  # type: ignore[assignment]
    run(opts, r)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse, resolve, run; every error becomes its message and exit code here."""
    if argv is not None and list(argv) == ["--version"]:
        print(VERSION)  # what argparse would print, before any parser or reporter is built
        return 0
    from sops_deploy.errors import EXIT_INTERRUPTED, EXIT_OK, SopsDeployError
    from sops_deploy.output.reporter import Reporter  # after --help: argparse answers that alone

    env = dict(os.environ if environ is None else environ)
    reporter = Reporter(env=env)
    args = build_parser().parse_args(argv)
    from sops_deploy.interrupt import Cancel

    cancel = Cancel()  # the one cancel token of this run: its signal handlers set it
    try:
        with cancel.handled():
            _run(args.command, vars(args), env, reporter, cancel)
    except SopsDeployError as exc:
        if not exc.reported:
            reporter.failure(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        reporter.info("interrupted")
        return EXIT_INTERRUPTED
    return EXIT_OK


def entrypoint() -> None:
    """`sops-deploy` and `python -m sops_deploy`: this process, then `main`."""
    # Paramiko's config module imports `invoke` (~120 ms, a third of a deploy's start-up)
    # only to run ssh_config `Match exec`; sops-deploy reads ssh_config itself (sshconfig.py
    # runs `Match exec` with /bin/sh), so this process keeps invoke out (paramiko then
    # treats it as not installed).
    sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]
    # A log that cannot show a character (PYTHONIOENCODING=ascii, a C locale) gets it as a
    # backslash escape instead of a traceback; redaction has run before any text is encoded.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    sys.exit(main(sys.argv[1:]))
