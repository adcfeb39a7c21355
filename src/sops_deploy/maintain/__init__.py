"""Maintainer commands: `init`, `rotate`, `recipients`, `doctor`.

Built on `sops.py`, `tools.py` and `remote.py`; no deploy logic lives here. `add_parsers`
registers the sub-commands on the CLI's parser and `run` executes one; both are called
from `cli.py`, which stays the single error boundary.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sops_deploy.config import Settings
    from sops_deploy.report import Reporter

COMMANDS = ("init", "rotate", "recipients", "doctor")
KEY_EPILOG = """\
the age key comes from AGE_KEY (or SOPS_AGE_KEY / SOPS_AGE_KEY_FILE) or --age-key-file,
e.g. AGE_KEY="$(cat secrets/age-key.txt)" sops-deploy ...
"""


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register init, rotate, recipients and doctor on the top-level sub-parsers."""
    from sops_deploy.cli import _source_flags

    init = sub.add_parser(
        "init",
        help="set up a repository: age key, .sops.yaml, encrypted .env, pinned host, workflow",
        description="Set up this directory (a git repository root) for sops-deploy and print "
        "the exact next steps. Never overwrites without --force; never replaces an existing "
        "secrets/age-key.txt. --yes answers every prompt but keeps the --from plaintext unless "
        "--delete-plaintext is given.",
    )
    init.add_argument("--from", dest="from_env", metavar="PATH", help="plaintext .env to encrypt")
    init.add_argument("--host", metavar="[USER@]HOST[:PORT]", help="fetch and pin its host key")
    init.add_argument(
        "--remote-path", metavar="PATH", help="the .env path on the server (default ~/app/.env)"
    )
    init.add_argument(
        "--ssh-key-file", metavar="PATH", help="the SSH key named in the printed next steps"
    )
    init.add_argument(
        "--action-ref", metavar="OWNER/sops-deploy@v1", help="the action the workflow uses"
    )
    init.add_argument("--force", action="store_true", help="overwrite files init wrote before")
    init.add_argument(
        "--yes", "-y", action="store_true", help="answer yes to every prompt (keeps the plaintext)"
    )
    init.add_argument(
        "--delete-plaintext", action="store_true", help="delete --from after a verified encrypt"
    )
    init.add_argument("--timeout", type=float, default=20.0, metavar="S", help="SSH timeout")

    rotate = sub.add_parser(
        "rotate",
        help="change one value, or the data key, without plaintext",
        description="Set KEY to a new value inside the encrypted file through "
        "`sops set --value-stdin`: no plaintext file, no value on a command line or in output.",
        epilog=KEY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rotate.add_argument("key", nargs="?", metavar="KEY", help="the key whose value to replace")
    how = rotate.add_mutually_exclusive_group(required=True)
    how.add_argument("--generate", action="store_true", help="a random value (never shown)")
    how.add_argument("--value-stdin", action="store_true", help="read the new value from stdin")
    how.add_argument("--data-key", action="store_true", help="sops rotate: a new data key")
    rotate.add_argument("--length", type=int, default=32, metavar="N", help="default 32")
    rotate.add_argument(
        "--charset",
        default="alnum",
        help="alnum (default) | hex | urlsafe | alpha | digits | symbols",
    )
    rotate.add_argument("--file", action="append", metavar="PATH", help="encrypted file")
    rotate.add_argument("--age-key-file", metavar="PATH", help="age identity file")

    recipients = sub.add_parser(
        "recipients",
        help="add or remove an age recipient, re-key files",
        description="Edit the age recipients of every rule in .sops.yaml, then re-key every "
        "file the rules match (`sops updatekeys -y`; on remove, a new data key first).",
        epilog=KEY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    recipients.add_argument("action", choices=("add", "remove"))
    recipients.add_argument("recipient", metavar="AGE1…")
    recipients.add_argument(
        "--sops-config", metavar="PATH", help=".sops.yaml (default: here or a parent)"
    )
    recipients.add_argument("--age-key-file", metavar="PATH", help="age identity file")

    doctor = sub.add_parser(
        "doctor",
        help="check tools, keys, files and hosts; ✓/✗ with fixes",
        description="One ✓/✗ line per check, each ✗ with its fix. Exit 0 when every check "
        "passes, 1 when any fails.",
        epilog=KEY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _source_flags(doctor)
    doctor.add_argument(
        "--sops-config", metavar="PATH", help=".sops.yaml (default: here or a parent)"
    )
    d = doctor.add_argument_group("hosts")
    d.add_argument("--host", action="append", metavar="[USER@]HOST[:PORT]")
    d.add_argument("--user")
    d.add_argument("--remote-path", metavar="PATH")
    d.add_argument("--ssh-key-file", metavar="PATH")
    d.add_argument(
        "--known-hosts", metavar="PATH|LINES", help="default secrets/known_hosts if present"
    )
    d.add_argument("--host-key-fingerprint", action="append", metavar="SHA256:...")
    d.add_argument("--timeout", type=float, default=20.0, metavar="S")


def run(args: argparse.Namespace, env: Mapping[str, str], reporter: Reporter) -> int:
    """Execute one maintainer command; raises SopsDeployError for `cli.main` to report."""
    from sops_deploy.config import age_source, parse_host
    from sops_deploy.defaults import DEFAULT_FILE
    from sops_deploy.errors import UsageError

    if args.command == "init":
        from sops_deploy.maintain.init_repo import DEFAULT_REMOTE_PATH, InitOptions, run_init

        opts = InitOptions(
            root=Path.cwd(),
            from_env=Path(args.from_env) if args.from_env else None,
            host=parse_host(args.host) if args.host else None,
            remote_path=_remote_path(args.remote_path or DEFAULT_REMOTE_PATH),
            ssh_key_file=args.ssh_key_file,
            action_ref=args.action_ref or InitOptions.action_ref,
            force=args.force,
            yes=args.yes,
            delete_plaintext=args.delete_plaintext,
            timeout=args.timeout,
        )
        return run_init(opts, reporter, ask)

    age = age_source(env, getattr(args, "age_key_file", None))
    reporter.mask([age.text] if age.text else [])
    if args.command == "rotate":
        from sops_deploy.maintain import rotation

        files = args.file or [DEFAULT_FILE]
        if args.data_key:
            return rotation.rotate_data_key(files, age, reporter)
        if not args.key:
            raise UsageError("rotate needs a KEY", "e.g. `sops-deploy rotate API_TOKEN --generate`")
        if len(files) != 1:
            raise UsageError("rotate KEY changes one file", "pass a single --file")
        value = (
            rotation.generate(args.length, args.charset)
            if args.generate
            else _stdin_value(args.key)
        )
        return rotation.rotate_value(files[0], args.key, value, age, reporter)
    if args.command == "recipients":
        from sops_deploy.maintain import rotation

        return rotation.change_recipients(
            args.recipient,
            add=args.action == "add",
            config_path=_config(args.sops_config),
            age=age,
            reporter=reporter,
        )
    from sops_deploy.maintain import doctor, sopsconfig

    config = Path(args.sops_config) if args.sops_config else sopsconfig.find(Path.cwd())
    return doctor.run_doctor(_doctor_settings(args, env), config, reporter)


def _remote_path(path: str) -> str:
    from sops_deploy.config import check_remote_path

    return check_remote_path(path)


def _config(path: str | None) -> Path:
    from sops_deploy.errors import UsageError
    from sops_deploy.maintain import sopsconfig

    if path:
        return Path(path)
    found = sopsconfig.find(Path.cwd())
    if found is None:
        raise UsageError(
            "no .sops.yaml here or in any parent directory",
            "run `sops-deploy init`, or pass --sops-config PATH (see README#faq-sopsyaml)",
        )
    return found


def _stdin_value(key: str) -> str:
    if sys.stdin.isatty():  # typed by hand: no echo, so the value is not left on screen
        return getpass.getpass(f"new value for {key} (not shown): ", stream=sys.stderr)
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


def _doctor_settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    from sops_deploy.commands import settings_from
    from sops_deploy.config import Settings, parse_host, split_list

    base = settings_from(args, env)
    known = args.known_hosts
    if known is None and Path("secrets/known_hosts").is_file():
        known = "secrets/known_hosts"
    return Settings(
        command="doctor",
        files=base.files,
        required=base.required,
        schema=base.schema,
        format=base.format,
        age=base.age,
        hosts=tuple(parse_host(h) for item in args.host or [] for h in split_list(item)),
        user=args.user,
        remote_path=args.remote_path or "",
        ssh_key=env.get("SSH_PRIVATE_KEY") or None,
        ssh_key_file=args.ssh_key_file,
        ssh_passphrase=env.get("SSH_PRIVATE_KEY_PASSPHRASE") or None,
        known_hosts=known,
        fingerprints=tuple(f for item in args.host_key_fingerprint or [] for f in split_list(item)),
        timeout=args.timeout,
    )


def ask(question: str) -> bool:
    """Ask on stderr, read one line from stdin; anything but y/yes (or EOF) is no."""
    print(question, end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    return answer.strip().lower() in ("y", "yes")
