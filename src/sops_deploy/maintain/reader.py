"""Which program reads the deployed file: `init` asks (or takes `--format`) and records it.

The reader decides the file's syntax: Docker Compose reads `$$` as `$`, python-dotenv and a
shell do not, systemd and `docker run --env-file` quote differently. A silent default would
hand an app a wrong password without a word, so `init` asks when it runs in a terminal,
takes `--format` otherwise, and writes the answer as `format:` into `sops-deploy.yaml`,
which `deploy`, `check` and the action read (a flag or action input still wins).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from sops_deploy.defaults import DEFAULT_CONFIG
from sops_deploy.inputs.settings import InitOptions
from sops_deploy.output.reporter import Reporter

# (what the user recognises, the format that reader reads exactly)
READERS = (
    ("Docker Compose (env_file:, or .env beside compose.yaml)", "compose"),
    ("a Python or Ruby app that loads it with dotenv (python-dotenv, dotenv gem)", "dotenv"),
    ("a Node app (the dotenv package, node --env-file)", "node"),
    ("a shell script that sources it (. ./.env)", "shell"),
    ("systemd (EnvironmentFile=)", "systemd"),
    ("docker run --env-file", "docker"),
)
WHY = (
    "the reader decides the file's syntax: Docker Compose needs `$` written as `$$`, "
    "python-dotenv would read that `$$` literally"
)


def question() -> str:
    lines = ["Which program reads the deployed file? (" + WHY + ")"]
    lines += [f"  {n}. {label}" for n, (label, _fmt) in enumerate(READERS, 1)]
    return "\n".join(lines) + f"\nNumber 1-{len(READERS)}: "


def choose(
    opts: InitOptions, answer: Callable[[str], str] | None, reporter: Reporter
) -> str | None:
    """The format: `--format`, else the answer in a terminal, else None (warned)."""
    if opts.format is not None:
        return opts.format
    if answer is not None and not opts.yes:
        for _attempt in range(3):
            text = answer(question()).strip().lower()
            if text.isdigit() and 1 <= int(text) <= len(READERS):
                return READERS[int(text) - 1][1]
            if text in {fmt for _label, fmt in READERS}:
                return text
            reporter.info(f"  please answer with a number from 1 to {len(READERS)}")
    reporter.warn(
        f"no --format given: {DEFAULT_CONFIG} records none, so deploys write Docker "
        f"Compose's syntax; {WHY}. Pass --format "
        + "|".join(fmt for _label, fmt in READERS)
        + f", or set `format:` in {DEFAULT_CONFIG}"
    )
    return None


def config_text(opts: InitOptions, fmt: str | None, encrypted: str, known_hosts: str) -> str:
    """`sops-deploy.yaml`: the format under `defaults:`, and the environment init set up
    (`encrypted` and `known_hosts` relative to the repository; the file's own paths are
    relative to its directory)."""
    here = Path(DEFAULT_CONFIG).parent
    encrypted = os.path.relpath(encrypted, here)
    known_hosts = os.path.relpath(known_hosts, here)
    lines = [
        "# Written by `sops-deploy init`. deploy, check, diff and doctor run in the repository",
        "# root read it (a flag or action input wins); paths are relative to this file.",
        "# See docs/first-steps.md.",
        "version: 1",
        "# Which program reads the deployed file decides its syntax (Docker Compose needs",
        "# `$` as `$$`, python-dotenv reads that literally). `format:` is one of:",
        *(f"#   {f}: {label}" for label, f in READERS),
        f"defaults:\n  format: {fmt}" if fmt else "defaults: {}  # no format: chosen yet (compose)",
    ]
    if opts.host is None:
        lines.append("environments: {}  # add one: files, hosts, remote-path")
        return "\n".join(lines) + "\n"
    lines += [
        "environments:",
        "  production:",
        f"    files: [{json.dumps(encrypted)}]",
        f"    hosts: [{json.dumps(str(opts.host))}]",
        f"    remote-path: {json.dumps(opts.remote_path)}",
        f"    known-hosts: {json.dumps(known_hosts)}",
    ]
    return "\n".join(lines) + "\n"


def write(root: Path, text: str, reporter: Reporter, fmt: str | None) -> None:
    path = root / DEFAULT_CONFIG
    if path.exists():
        if fmt:
            reporter.info(
                f"  {DEFAULT_CONFIG} exists, left as it is: set `format: {fmt}` in it "
                "(under `defaults:` or the environment)"
            )
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    reporter.info(f"✓ wrote {DEFAULT_CONFIG}" + (f" (format: {fmt})" if fmt else ""))
