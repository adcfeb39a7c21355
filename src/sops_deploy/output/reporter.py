"""Everything the user sees: the terminal reporter and GitHub workflow commands.

One layer, last: every text this module writes — stderr, stdout, the step summary,
`GITHUB_OUTPUT`, annotations — passes `_clean` (redaction of every masked value in every
form, then `workflow.neutralise`) and only then is cut to size. `mask()` runs before
anything else prints; values the policy leaves readable (public keys, booleans, short
values: docs/action-and-masking.md "Masking") are never masked, so outputs such as
`changed` and `hosts` reach later steps intact, and an output GitHub would still drop is
warned about by name.
Fixes are written with CLI flags and shown per interface (`hints.py`). Outcomes are
decided elsewhere; this module only tells them.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, TextIO

from sops_deploy.errors import Problem, SopsDeployError, UsageError, ValidationError
from sops_deploy.output import hints, workflow  # the tables, mdsafe and exportnames: where used
from sops_deploy.output.redact import Redactor

if TYPE_CHECKING:
    from sops_deploy.deploy.delivery import HostResult
    from sops_deploy.plan.build import Plan

PUBLIC_FIX = (
    "if the value is not a secret, mark the key public (`secret: false` in schema.yaml, "
    "`# public` in .env.example, `public-keys:` in sops-deploy.yaml, or store it "
    "unencrypted with sops); otherwise do not put it in this output"
)


class Reporter:
    """Writes progress to stderr and results to stdout; on GitHub, also workflow commands."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.env = dict(env or {})  # the environment cli.main resolved (GITHUB_*)
        self.github = self.env.get("GITHUB_ACTIONS") == "true"
        self.interface = hints.interface(self.env)
        self.redactor = Redactor()
        self._lock = threading.Lock()
        self._summary_full = False
        self._outputs_used = 0

    # --- masking -----------------------------------------------------------------------

    def mask(self, values: Iterable[str | tuple[str, str]]) -> None:
        """Mask values: bare strings (key material) or (key, value) pairs of secrets.

        The caller leaves out public keys (`publicity.Publicity.is_public`); booleans and
        values under 4 characters are left readable here. On GitHub every masked line is
        registered with `::add-mask::` before anything else can print it.
        """
        lines = self.redactor.add_all(
            item if isinstance(item, tuple) else (None, item) for item in values
        )
        if self.github and lines:
            text = "".join(f"::add-mask::{workflow.escape_data(f)}\n" for f in lines)
            with self._lock:
                self.out.write(text)
                self.out.flush()

    def mask_keys(self, texts: Iterable[str]) -> None:
        """Mask key material (age identity, SSH key): every line except `#` comments,
        which carry public information (an age key file's `# public key:` line)."""
        self.mask(
            line
            for text in texts
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        )

    def keep_readable(self, texts: Iterable[str]) -> None:
        """Paths and names the user passed stay readable in every message, even where a
        secret value is one of their words (the value stays masked everywhere else)."""
        self.redactor.keep(list(texts))

    def scrub(self, text: str) -> str:
        return self.redactor.scrub(text)

    def _clean(self, text: str) -> str:
        return workflow.neutralise(self.redactor.scrub(text))

    def fix(self, hint: str) -> str:
        """A hint in the words of the interface in use (`--flag` or `input:`)."""
        return hints.render(hint, self.interface)

    def _write(self, stream: TextIO, text: str) -> None:
        self._write_clean(stream, self._clean(text))

    def _write_clean(self, stream: TextIO, text: str) -> None:
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    def _command(self, kind: str, message: str, **props: str | int | None) -> None:
        clean = {k: self._clean(str(v)) if isinstance(v, str) else v for k, v in props.items()}
        self._write_clean(self.out, workflow.command(kind, self._clean(message), **clean))

    # --- messages ----------------------------------------------------------------------

    def info(self, text: str) -> None:
        """Progress, on stderr."""
        self._write(self.err, text)

    def line(self, text: str) -> None:
        """A result line on stdout (what a script reads), redacted like every message."""
        self._write(self.out, text)

    def prompt(self, question: str) -> None:
        """A question on stderr, without a newline: the answer is typed after it."""
        with self._lock:
            self.err.write(self._clean(question))
            self.err.flush()

    def warn(self, text: str, title: str = "sops-deploy") -> None:
        text = self.fix(text)  # a warning's advice names `input:` in the action
        if self.github:
            self._command("warning", text, title=title)
        else:
            self._write(self.err, f"warning: {text}")

    def group(self, title: str) -> None:
        if self.github:
            self._command("group", title)

    def endgroup(self) -> None:
        if self.github:
            self._write_clean(self.out, "::endgroup::")

    def problems(self, problems: Iterable[Problem]) -> None:
        from sops_deploy.envfile.fragments import looks_like_value

        for p in problems:
            if p.key and looks_like_value(p.key):  # a fragment of a value: by line only
                p = dataclasses.replace(p, key=None)
            fix = self.fix(p.fix)
            if self.github:
                self._command(
                    "error" if p.severity == "error" else "warning",
                    f"{p.key or f'line {p.line}'}: {p.message} — fix: {fix}",
                    title=p.rule,
                    line=p.line,
                    file=p.file,
                )
            else:
                self._write(self.err, f"{p.severity}: {p.location()}: [{p.rule}] {p.message}")
                self._write(self.err, f"  fix: {fix}")

    def failure(self, exc: SopsDeployError) -> None:
        if isinstance(exc, ValidationError):
            self.problems(exc.problems)
        hint = self.fix(exc.hint) if exc.hint else ""
        if self.github:
            self._command(
                "error",
                f"{exc.message} — fix: {hint}" if hint else exc.message,
                title=exc.title,
                file=exc.file,
                line=exc.line if exc.file else None,
            )
            from sops_deploy.output import mdsafe

            self.append_summary(
                f"### ❌ {mdsafe.text(exc.title)}\n\n{mdsafe.text(exc.message)}\n\n"
                f"**How to fix:** {mdsafe.text(hint)}\n" + _problem_table(exc, self.fix)
            )
        self._write(self.err, f"error: {exc.message}")
        if hint:
            self._write(self.err, f"  fix: {hint}")

    # --- results -----------------------------------------------------------------------

    def host_result(self, r: HostResult) -> None:
        """One host's progress line as it finishes (in the collapsed group on GitHub)."""
        for run in r.commands:
            self._write(self.err, f"  {r.host}: {run.describe()}")
            for line in run.output_tail:
                # the server's text: redacted, neutralised, and only then cut
                self._write_clean(self.err, f"    | {workflow.cut(self._clean(line))}")
        if r.failed and r.error is not None:
            self._write(self.err, f"✗ {r.host}: {r.why}")
            if r.error.hint:
                self._write(self.err, f"    fix: {self.fix(r.error.hint)}")
            return
        if r.status == "skipped":
            self._write(self.err, f"- {r.host}: skipped ({r.note})")
            return
        parts = [f"+{len(r.added)} -{len(r.removed)} ~{len(r.changed)} ={r.unchanged}"]
        if r.mode_drift:
            parts.append(f"mode {r.mode_before:04o} → {r.mode_after:04o}")
        mark = {"unchanged": "=", "in-sync": "=", "drift": "≠"}.get(r.status, "✓")
        self._write(
            self.err,
            f"{mark} {r.host}:{r.path} {r.status} ({', '.join(parts)}) in {r.seconds:.2f}s",
        )

    def annotate_hosts(self, command: str, results: list[HostResult]) -> None:
        """On GitHub: one ::error per failed host (title, host, reason, fix), and one
        ::error (check) or ::warning (diff) per host that has drifted, naming its keys."""
        if not self.github:
            return
        for r in results:
            if r.failed and r.error is not None:
                hint = self.fix(r.error.hint) if r.error.hint else ""
                text = f"{r.host}: {r.why}" + (f" — fix: {hint}" if hint else "")
                self._command("error", text, title=f"{r.error.title}: {r.host}")
            elif r.status == "drift":
                from sops_deploy.output.summary import LEGEND

                kind = "error" if command == "check" else "warning"
                self._command(
                    kind,
                    f"{r.host}:{r.path} differs from the encrypted file — {r.reason} "
                    f"({LEGEND}) — fix: run deploy to bring it in line",
                    title=f"Drift on {r.host}",
                )

    def summary(self, command: str, plan: Plan, results: list[HostResult]) -> None:
        """The key-level summary (stdout), annotations, the job summary and the outputs."""
        from sops_deploy.output import summary

        lines = [f"sops-deploy {command}: {len(plan.secrets)} keys, sha256 {plan.sha256[:12]}"]
        lines += summary.host_table(results)
        for r in results:  # what the table has no column for
            extra = [f"backup: {r.backup}"] if r.backup else []
            extra += [run.describe() for run in r.commands]
            extra += ["rolled back to the previous file"] if r.rolled_back else []
            extra += [f"fix: {self.fix(r.error.hint)}"] if r.error and r.error.hint else []
            lines += [f"  {r.host}: {line}" for line in extra]
        if command in ("check", "diff"):
            lines += summary.aligned_key_rows(results)
        self._write(self.out, "\n".join(lines))
        self.annotate_hosts(command, results)
        if self.github:
            self.append_summary(summary.summary_markdown(command, plan, results, self.fix))
        self.set_outputs(summary.outputs(plan, results))

    # --- GitHub files ------------------------------------------------------------------

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        """Append outputs to $GITHUB_OUTPUT, each checked first: an output that would carry
        a masked value is written with it redacted, and a ::warning names the output, the
        key and the fix (GitHub drops such an output). Within GitHub's size limit."""
        path = self.env.get("GITHUB_OUTPUT")
        if not path:
            return
        cleaned: dict[str, str] = {}
        for name, value in outputs.items():
            keys = self.redactor.keys_in(value)
            cleaned[name] = self.redactor.scrub(value)
            if keys:
                # a whole-word-only value stays in our text, but GitHub masks substrings
                still = self.redactor.keys_in(cleaned[name])
                what = "is dropped by GitHub" if still else "has it replaced by ***"
                self.warn(
                    f"the output `{name}` contains the value of {', '.join(keys)}, which is "
                    f"masked, so the output {what} — fix: {PUBLIC_FIX}",
                    title=f"Output {name} masked",
                )
        # The budget goes to the small outputs first: `changed` is never cut for `report`.
        for name in sorted(cleaned, key=lambda n: len(cleaned[n])):
            size = workflow.utf16_size(cleaned[name])
            if self._outputs_used + size > workflow.OUTPUTS_BUDGET:
                cleaned[name] = self._shrunk(name, cleaned[name])
                size = workflow.utf16_size(cleaned[name])
            self._outputs_used += size
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(_heredoc(name, value) for name, value in cleaned.items()))

    def _shrunk(self, name: str, value: str) -> str:
        """`value` cut to the room left (a list at a comma; `report` to `[]`), and why."""
        room = max(0, workflow.OUTPUTS_BUDGET - self._outputs_used) // 2  # UTF-16: 2 bytes
        if name == "report":
            value = "[]"
        else:
            keep = value[:room]
            value = keep.rsplit(",", 1)[0] if "," in keep else keep
        self.warn(
            f"the output `{name}` was cut to fit GitHub's limit of 1 MB of outputs per job; "
            "the full list is in the step log",
            title=f"Output {name} truncated",
        )
        return value

    def export_env(self, values: Mapping[str, str], keys: Iterable[str]) -> None:
        """Append the named keys' values (or all, for `*`) to $GITHUB_ENV for later steps.

        The values were masked (or left readable, by the policy) when parsed; each is
        written as a heredoc whose random delimiter is checked not to occur in the value.
        """

        from sops_deploy.output import exportnames

        keys = list(keys)
        wanted = list(values) if "*" in keys else list(dict.fromkeys(keys))
        missing = [k for k in wanted if k not in values]
        if missing:
            raise UsageError(
                f"export-env names {', '.join(missing)}, not in the secrets",
                "list only keys that the encrypted file defines, or use *",
            )
        dangerous = exportnames.refused(wanted, keys)
        if dangerous:
            raise UsageError(
                f"export-env '*' would export {', '.join(dangerous)}, which change what "
                "later steps run (loader, shell, interpreter or runner settings); nothing was "
                "exported or deployed",
                f"list each by name if that is intended (--export-env '*,{dangerous[0]}'), or "
                "rename the key in the encrypted file, or list the keys to export instead of *",
            )
        path = self.env.get("GITHUB_ENV")
        if not path:
            self.warn("export-env ignored: GITHUB_ENV is not set (not running on GitHub Actions)")
            return
        with open(path, "a", encoding="utf-8") as fh:
            for key in wanted:
                fh.write(_heredoc(key, values[key]))
        self.info(f"exported {len(wanted)} key(s) to later steps: {', '.join(wanted)}")

    def append_summary(self, markdown: str) -> None:
        """Append to the step summary, redacted, within GitHub's 1 MiB per step."""
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if not path or self._summary_full:
            return
        text = self._clean(markdown) + "\n"
        try:
            used = os.path.getsize(path)
        except OSError:
            used = 0
        room = workflow.SUMMARY_BUDGET - used
        data = text.encode("utf-8")
        if len(data) > room:
            note = (
                "\n\n> ⚠️ The summary was cut here: GitHub keeps at most 1 MiB per step "
                "summary. The full tables are in the step log and the `report` output.\n"
            )
            keep = data[: max(0, room - len(note.encode()))].decode("utf-8", "ignore")
            text = keep.rsplit("\n", 1)[0] + note
            self._summary_full = True
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)


def _heredoc(name: str, value: str) -> str:
    """`name<<DELIM`, the value, `DELIM`: the file-command form for multi-line values."""
    import secrets

    while True:
        delim = f"ghadelim_{secrets.token_hex(16)}"
        if delim not in value:
            return f"{name}<<{delim}\n{value}\n{delim}\n"


def _problem_table(exc: SopsDeployError, fix: object) -> str:
    if not isinstance(exc, ValidationError):
        return ""
    from sops_deploy.output import mdsafe

    render = fix if callable(fix) else str
    rows = ["| file | line | key | problem | fix |", "|---|---|---|---|---|"]
    for p in exc.problems:
        rows.append(
            f"| {mdsafe.code(p.file)} | {p.line or ''} | {mdsafe.code(p.key or '')} | "
            f"{mdsafe.text(p.message)} | {mdsafe.text(render(p.fix))} |"
        )
    return "\n" + "\n".join(rows) + "\n"
