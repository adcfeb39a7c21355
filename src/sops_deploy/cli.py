"""The command line: argparse, sub-commands, and `main`.

This module imports only argparse and constants, so `--help` and `--version` answer
before any parser, YAML or SSH library is loaded; `commands.run` does the work and is the
single error boundary (exit 0 ok · 1 runtime · 2 usage · 3 drift · 4 validation ·
5 decryption). Every flag falls back to a `SOPS_DEPLOY_<FLAG>` environment variable;
secrets come only from the environment (AGE_KEY, SSH_PRIVATE_KEY,
SSH_PRIVATE_KEY_PASSPHRASE).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from sops_deploy import __version__, maintain
from sops_deploy.defaults import DEFAULT_CONFIG, DEFAULT_FILE

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


def _source_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("source")
    g.add_argument(
        "--file",
        action="append",
        metavar="PATH",
        help=f"encrypted file (repeatable; later overrides earlier; default {DEFAULT_FILE})",
    )
    g.add_argument("--required", metavar="K1,K2", help="keys that must be present and non-empty")
    g.add_argument("--schema", metavar="PATH", help="schema file (schema.yaml or .env.example)")
    g.add_argument(
        "--format",
        metavar="FMT",
        help="compose (default) | dotenv | shell | raw: who reads the .env",
    )
    g.add_argument(
        "--age-key-file",
        metavar="PATH",
        help="age identity file (default: AGE_KEY / SOPS_AGE_KEY from the environment)",
    )


def _target_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("target")
    g.add_argument(
        "--host",
        action="append",
        metavar="[USER@]HOST[:PORT]",
        help="server to write to (repeatable)",
    )
    g.add_argument("--user", help="SSH user for hosts that do not name one")
    g.add_argument("--port", type=int, help="SSH port for hosts that do not name one")
    g.add_argument("--remote-path", metavar="PATH", help="the .env path on the server")
    g.add_argument(
        "--ssh-key-file",
        metavar="PATH",
        help="private key file (default: SSH_PRIVATE_KEY from the environment)",
    )
    g.add_argument(
        "--known-hosts",
        metavar="PATH|LINES",
        help="known_hosts file, or its lines (default ~/.ssh/known_hosts)",
    )
    g.add_argument(
        "--host-key-fingerprint",
        action="append",
        metavar="SHA256:...",
        help="pin the server's host key fingerprint (repeatable)",
    )
    g.add_argument(
        "--insecure-accept-any-host-key",
        action="store_true",
        default=None,
        help="DANGEROUS: skip host key verification (warns on every run)",
    )
    g.add_argument("--jump-host", metavar="[USER@]HOST[:PORT]", help="bastion to connect through")
    g.add_argument("--file-mode", metavar="0600", help="mode of the written file (default 0600)")
    g.add_argument("--timeout", type=float, metavar="S", help="connect/IO timeout (default 20)")
    g.add_argument("--retries", type=int, metavar="N", help="connection retries (default 2)")
    g.add_argument("--parallel", type=int, metavar="N", help="hosts at once (default 8)")
    g.add_argument(
        "--fail-fast", action="store_true", default=None, help="stop at the first failed host"
    )
    g.add_argument(
        "--follow-symlinks",
        action="store_true",
        default=None,
        help="write through a symlink at the target path",
    )


def _safety_flags(d: argparse._ArgumentGroup) -> None:
    d.add_argument(
        "--backup", type=int, metavar="N", help="keep the newest N backups (default 5; 0: none)"
    )
    d.add_argument(
        "--post-command", metavar="CMD", help="run CMD in the file's directory after a change"
    )
    d.add_argument(
        "--post-command-timeout", type=float, metavar="S", help="post-command limit (default 300)"
    )
    d.add_argument(
        "--rollback-on-failure",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="restore the previous file if the post-command fails (default on)",
    )
    d.add_argument(
        "--lock-timeout", type=float, metavar="S", help="wait for a concurrent deploy (default 60)"
    )


def _config_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("config file")
    g.add_argument(
        "--config",
        metavar="PATH",
        help=f"sops-deploy.yaml with named environments (default {DEFAULT_CONFIG} if present)",
    )
    g.add_argument("--env", metavar="NAME", help="the environment in the config file to use")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sops-deploy",
        description="Decrypt a SOPS + age encrypted .env, prove it complete, and write it "
        "atomically to your servers over SFTP.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=VERSION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    deploy = sub.add_parser(
        "deploy",
        help="write the secrets to every host",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _target_flags(deploy)
    _source_flags(deploy)
    _config_flags(deploy)
    d = deploy.add_argument_group("deploy")
    d.add_argument(
        "--dry-run", action="store_true", default=None, help="connect and compare, write nothing"
    )
    _safety_flags(d)
    for name, text in (
        ("check", "exit 3 if any host differs (names keys, never values)"),
        ("diff", "show added/removed/changed keys per host, never values"),
    ):
        p = sub.add_parser(
            name, help=text, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        _target_flags(p)
        _source_flags(p)
        _config_flags(p)
    validate = sub.add_parser(
        "validate",
        help="decrypt, lint and check the secrets; no network",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _source_flags(validate)
    _config_flags(validate)

    hosts = sub.add_parser(
        "hosts",
        help="list the hosts of an environment (--json for a GitHub strategy.matrix)",
        epilog=HOSTS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    hosts.add_argument("--json", action="store_true", help='print [{"host": ..., "name": ...}]')
    hosts.add_argument("--host", action="append", metavar="[USER@]HOST[:PORT]")
    hosts.add_argument("--user", help="SSH user for hosts that do not name one")
    hosts.add_argument("--port", type=int, help="SSH port for hosts that do not name one")
    _config_flags(hosts)

    _github_sync_parser(sub)

    tools = sub.add_parser("tools", help="manage the sops and age binaries")
    tsub = tools.add_subparsers(dest="tools_command", metavar="ACTION", required=True)
    _tools_install_flags(
        tsub.add_parser("install", help="install pinned, verified sops/age into the user cache")
    )
    for p in (deploy, validate):
        p.add_argument(
            "--export-env",
            metavar="K1,K2|*",
            help="on GitHub: export these keys' values (masked) to $GITHUB_ENV for later steps",
        )
    maintain.add_parsers(sub)
    return parser


def _tools_install_flags(install: argparse.ArgumentParser) -> None:
    install.add_argument(
        "tool", nargs="?", default="sops", choices=("sops", "age", "all"), help="default sops"
    )
    install.add_argument(
        "--source",
        default=None,
        choices=("auto", "release", "mirror", "system", "go"),
        help="auto (default): release when reachable, else go install; mirror: release "
        "layout under --mirror",
    )
    install.add_argument("--mirror", metavar="URL", help="base URL laid out like github.com")
    install.add_argument("--sops-version", default=None)
    install.add_argument("--age-version", default=None)
    install.add_argument("--sops-sha256", metavar="HEX", help="SHA-256 of the sops release asset")
    install.add_argument("--age-sha256", metavar="HEX", help="SHA-256 of the age .tar.gz")
    install.add_argument(
        "--allow-unverified",
        action="store_true",
        default=None,
        help="install a version with no known digest (warns)",
    )


GITHUB_EPILOG = """\
the token comes from GH_TOKEN or GITHUB_TOKEN only (never a flag); the API base from
GITHUB_API_URL (default https://api.github.com). Public keys (stored unencrypted by sops,
or `secret: false` in schema.yaml) become Actions variables. Nothing is deleted that
sops-deploy did not create. exit 3 with --check when GitHub differs from the file.
"""


def _github_sync_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "github-sync",
        help="sync the secrets into GitHub Actions secrets and variables",
        epilog=GITHUB_EPILOG + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _source_flags(p)
    _config_flags(p)
    g = p.add_argument_group("github")
    g.add_argument(
        "--repo", metavar="OWNER/REPO", help="the repository (default GITHUB_REPOSITORY)"
    )
    g.add_argument(
        "--github-environment", metavar="NAME", help="sync the secrets of this environment"
    )
    g.add_argument(
        "--dependabot", action="store_true", default=None, help="sync Dependabot secrets"
    )
    g.add_argument("--keys", metavar="K1,K2|GLOB", help="the keys to sync (default all)")
    g.add_argument("--prefix", metavar="P", help="name each secret P + key")
    g.add_argument(
        "--dry-run", action="store_true", default=None, help="print the plan, write nothing"
    )
    g.add_argument("--check", action="store_true", default=None, help="exit 3 when GitHub differs")
    g.add_argument(
        "--prune",
        action="store_true",
        default=None,
        help="delete names this tool created that left the file",
    )


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Parse the command line, then run it (see `commands.run`)."""
    if argv is not None and list(argv) == ["--version"]:
        print(VERSION)  # what argparse would print, without building every sub-parser
        return 0
    args = build_parser().parse_args(argv)
    # Paramiko's config module imports `invoke` (~120 ms, a third of a deploy's start-up)
    # only to run ssh_config `Match exec`; sops-deploy never reads an ssh_config, so this
    # process keeps invoke out (paramiko then treats it as not installed).
    sys.modules.setdefault("invoke", None)  # type: ignore[arg-type]
    from sops_deploy import commands  # after parsing: --help and --version never load it

    return commands.run(args, dict(os.environ if env is None else env))


def entrypoint() -> None:
    sys.exit(main(sys.argv[1:]))
