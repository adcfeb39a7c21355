"""Maintainer commands: `init`, `rotate`, `recipients`, `doctor`.

Built on `sops.py`, `tools.py` and the remote connection; no deploy logic lives here.
`cli.py` parses them and `options.py` resolves their typed options; each `run_*` here
takes those options and a Reporter, returns nothing on success and raises a
`SopsDeployError` for `cli.main` (the one error boundary) otherwise.
"""

from __future__ import annotations

import getpass
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sops_deploy.inputs.settings import (
        DoctorOptions,
        InitOptions,
        RecipientsOptions,
        RotateOptions,
    )
    from sops_deploy.output.reporter import Reporter


def run_init(opts: InitOptions, reporter: Reporter) -> None:
    from sops_deploy.maintain import init_repo

    init_repo.run_init(
        opts,
        reporter,
        lambda question: ask(question, reporter),
        (lambda question: _answer(question, reporter)) if sys.stdin.isatty() else None,
    )


def run_rotate(opts: RotateOptions, reporter: Reporter) -> None:
    from sops_deploy.errors import UsageError
    from sops_deploy.maintain import rotation

    if opts.data_key:
        rotation.rotate_data_key(list(opts.files), opts.age, opts.tools, reporter)
        return
    if not opts.key:
        raise UsageError("rotate needs a KEY", "e.g. `sops-deploy rotate API_TOKEN --generate`")
    if len(opts.files) != 1:
        raise UsageError("rotate KEY changes one file", "pass a single --file")
    value = (
        rotation.generate(opts.length, opts.charset) if opts.generate else _stdin_value(opts.key)
    )
    rotation.rotate_value(opts.files[0], opts.key, value, opts.age, opts.tools, reporter)


def run_recipients(opts: RecipientsOptions, reporter: Reporter) -> None:
    from sops_deploy.maintain import rotation

    rotation.change_recipients(
        opts.recipient,
        add=opts.add,
        config_path=opts.sops_config,
        age=opts.age,
        places=opts.tools,
        reporter=reporter,
    )


def run_doctor(opts: DoctorOptions, reporter: Reporter) -> None:
    from sops_deploy.maintain import doctor

    doctor.run_doctor(opts.settings, opts.sops_config, reporter, format_chosen=opts.format_chosen)


def _stdin_value(key: str) -> str:
    if sys.stdin.isatty():  # typed by hand: no echo, so the value is not left on screen
        return getpass.getpass(f"new value for {key} (not shown): ", stream=sys.stderr)
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


def _answer(question: str, reporter: Reporter) -> str:
    """Ask on stderr, read one line from stdin ("" on EOF)."""
    reporter.prompt(question)
    try:
        return sys.stdin.readline()
    except (OSError, ValueError):
        return ""


def ask(question: str, reporter: Reporter) -> bool:
    """Ask on stderr, read one line from stdin; anything but y/yes (or EOF) is no."""
    reporter.prompt(question)
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    return answer.strip().lower() in ("y", "yes")
