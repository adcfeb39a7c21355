"""Everything the user sees: the terminal reporter and GitHub workflow commands.

Order matters: `mask()` runs before anything else prints, so every secret value (each
line of a multi-line value separately) is registered with GitHub as `::add-mask::` and
with this reporter's own redaction before any message can carry it. Outcomes are
decided elsewhere; this module only tells them.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TextIO

from sops_deploy.errors import Problem, SopsDeployError, UsageError, ValidationError

if TYPE_CHECKING:
    from sops_deploy.deploy import HostResult, Plan

MIN_REDACT = 4  # shorter values ("1", "on") would shred ordinary words if redacted


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


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
        self._redact: list[str] = []
        self._masked: set[str] = set()
        self._lock = threading.Lock()

    # --- masking -----------------------------------------------------------------------

    def mask(self, values: Iterable[str]) -> None:
        """Register secret values; on GitHub emit ::add-mask:: for each non-blank line."""
        for value in values:
            for line in {value, *value.splitlines()}:
                stripped = line.strip()
                if not stripped or "\n" in line:
                    continue
                for form in dict.fromkeys((line, stripped)):
                    if form in self._masked:
                        continue
                    self._masked.add(form)
                    if self.github:
                        self._write(self.out, f"::add-mask::{_escape_data(form)}", redact=False)
                    if form == stripped and len(stripped) >= MIN_REDACT:
                        self._redact.append(stripped)
        self._redact.sort(key=len, reverse=True)

    def mask_keys(self, texts: Iterable[str]) -> None:
        """Mask key material (age identity, SSH key): every line except `#` comments,
        which carry public information (an age key file's `# public key:` line)."""
        self.mask(
            line
            for text in texts
            for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        )

    def scrub(self, text: str) -> str:
        for value in self._redact:
            if value in text:
                text = text.replace(value, "***")
        return text

    def _write(self, stream: TextIO, text: str, *, redact: bool = True) -> None:
        with self._lock:
            stream.write((self.scrub(text) if redact else text) + "\n")
            stream.flush()

    # --- messages ----------------------------------------------------------------------

    def info(self, text: str) -> None:
        self._write(self.err, text)

    def line(self, text: str) -> None:
        """A result line on stdout (what a script reads), redacted like every message."""
        self._write(self.out, text)

    def prompt(self, question: str) -> None:
        """A question on stderr, without a newline: the answer is typed after it."""
        with self._lock:
            self.err.write(self.scrub(question))
            self.err.flush()

    def warn(self, text: str) -> None:
        if self.github:
            self._write(self.out, f"::warning title=sops-deploy::{_escape_data(text)}")
        else:
            self._write(self.err, f"warning: {text}")

    def group(self, title: str) -> None:
        if self.github:
            self._write(self.out, f"::group::{title}")

    def endgroup(self) -> None:
        if self.github:
            self._write(self.out, "::endgroup::")

    def problems(self, problems: Iterable[Problem]) -> None:
        for p in problems:
            if self.github:
                props = [f"title={_escape_prop(p.rule)}", f"file={_escape_prop(p.file)}"]
                if p.line is not None:
                    props.insert(1, f"line={p.line}")
                kind = "error" if p.severity == "error" else "warning"
                self._write(
                    self.out,
                    f"::{kind} {','.join(props)}::"
                    f"{_escape_data((p.key or '') + ': ' + p.message + ' — fix: ' + p.fix)}",
                )
            else:
                self._write(self.err, f"{p.severity}: {p}")

    def failure(self, exc: SopsDeployError) -> None:
        if isinstance(exc, ValidationError):
            self.problems(exc.problems)
        if self.github:
            props = [f"title={_escape_prop(exc.title)}"]
            if exc.file:
                props.append(f"file={_escape_prop(exc.file)}")
                if exc.line:
                    props.append(f"line={exc.line}")
            self._write(self.out, f"::error {','.join(props)}::{_escape_data(exc.message)}")
            self.append_summary(
                f"### ❌ {exc.title}\n\n{exc.message}\n\n**How to fix:** "
                f"{exc.hint}\n" + _problem_table(exc)
            )
        self._write(self.err, f"error: {exc.message}")
        if exc.hint:
            self._write(self.err, f"  fix: {exc.hint}")

    # --- results -----------------------------------------------------------------------

    def host_result(self, r: HostResult) -> None:
        for run in r.commands:
            self._write(self.err, f"  {r.host}: {run.describe()}")
            for line in run.output_tail:
                self._write(self.err, f"    | {line}")
        if r.failed and r.error is not None:
            self._write(self.err, f"✗ {r.host}: {r.error.message}")
            if r.error.hint:
                self._write(self.err, f"    fix: {r.error.hint}")
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

    def summary(self, command: str, plan: Plan, results: list[HostResult]) -> None:
        """The key-level summary (stdout), the job summary table, and the action outputs."""
        lines = [f"sops-deploy {command}: {len(plan.secrets)} keys, sha256 {plan.sha256[:12]}"]
        lines += host_table(results)
        for r in results:  # what the table has no column for
            extra = [f"backup: {r.backup}"] if r.backup else []
            extra += [run.describe() for run in r.commands]
            extra += ["rolled back to the previous file"] if r.rolled_back else []
            lines += [f"  {r.host}: {line}" for line in extra]
        if command in ("check", "diff") and key_rows(results):
            lines += ["", *_aligned([("host", "key", "difference"), *key_rows(results)])]
            lines.append("(added / removed / changed: what a deploy would do to that host)")
        for line in lines:
            self._write(self.out, line)
        if self.github:
            self.append_summary(
                _summary_markdown(command, plan, results) + _differences_markdown(results)
            )
        self.set_outputs(_outputs(plan, results))

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        path = self.env.get("GITHUB_OUTPUT")
        if not path:
            return
        with open(path, "a", encoding="utf-8") as fh:
            for name, value in outputs.items():
                fh.write(_heredoc(name, self.scrub(value)))

    def export_env(self, values: Mapping[str, str], keys: Iterable[str]) -> None:
        """Append the named keys' values (or all, for `*`) to $GITHUB_ENV for later steps.

        The values were masked when parsed; each is written as a heredoc whose random
        delimiter is checked not to occur in the value.
        """
        wanted = list(values) if "*" in keys else list(dict.fromkeys(keys))
        missing = [k for k in wanted if k not in values]
        if missing:
            raise UsageError(
                f"export-env names {', '.join(missing)}, not in the secrets",
                "list only keys that the encrypted file defines, or use *",
            )
        path = self.env.get("GITHUB_ENV")
        if not path:
            self.warn("export-env ignored: GITHUB_ENV is not set (not running on GitHub Actions)")
            return
        self.mask(values[k] for k in wanted)
        with open(path, "a", encoding="utf-8") as fh:
            for key in wanted:
                fh.write(_heredoc(key, values[key]))
        self.info(f"exported {len(wanted)} key(s) to later steps: {', '.join(wanted)}")

    def append_summary(self, markdown: str) -> None:
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if path:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(self.scrub(markdown) + "\n")


def _heredoc(name: str, value: str) -> str:
    """`name<<DELIM`, the value, `DELIM`: the file-command form for multi-line values."""
    while True:
        import secrets

        delim = f"ghadelim_{secrets.token_hex(16)}"
        if delim not in value:
            return f"{name}<<{delim}\n{value}\n{delim}\n"


def _keys(results: list[HostResult], attr: str) -> str:
    """Key names across hosts, each once; `TARGET:KEY` when the environment lists targets."""
    seen: dict[str, None] = {}
    for r in results:
        for k in getattr(r, attr):
            seen[target_key(r, k)] = None
    return ",".join(seen)


def target_key(r: HostResult, key: str) -> str:
    """`KEY`, or `TARGET:KEY` for a result of one of several targets (keys hold no `:`)."""
    return f"{r.target}:{key}" if r.target else key


def _outputs(plan: Plan, results: list[HostResult]) -> dict[str, str]:
    report = [
        {
            "host": r.host,
            "target": r.target or None,
            "format": r.format or None,
            "path": r.path,
            "status": r.status,
            "added": r.added,
            "removed": r.removed,
            "changed": r.changed,
            "mode_before": None if r.mode_before is None else f"{r.mode_before:04o}",
            "error": r.error.message if r.error else None,
            "backup": r.backup,
            "post_command": [
                {
                    "label": c.label,
                    "exit": c.exit_status,
                    "timed_out": c.timed_out,
                    "output_tail": c.output_tail,
                }
                for c in r.commands
            ],
            "rolled_back": r.rolled_back,
            "seconds": round(r.seconds, 3),
        }
        for r in results
    ]
    return {
        "changed": "true" if any(r.status == "changed" for r in results) else "false",
        "sha256": plan.sha256,
        "added-keys": _keys(results, "added"),
        "removed-keys": _keys(results, "removed"),
        "changed-keys": _keys(results, "changed"),
        "hosts": ",".join(dict.fromkeys(r.host for r in results)),
        "backup": ",".join(f"{r.host}:{r.backup}" for r in results if r.backup),
        "report": json.dumps(report),
    }


def _summary_markdown(command: str, plan: Plan, results: list[HostResult]) -> str:
    rows = [
        "| host | result | added | removed | changed | sha256 | time |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| `{r.host}` | {r.status} | {', '.join(r.added) or '–'} | "
            f"{', '.join(r.removed) or '–'} | {', '.join(r.changed) or '–'} | "
            f"`{plan.sha256[:12]}` | {r.seconds:.1f}s |"
        )
    return f"### sops-deploy {command}\n\n" + "\n".join(rows) + "\n"


def _problem_table(exc: SopsDeployError) -> str:
    if not isinstance(exc, ValidationError):
        return ""
    rows = ["| file | line | key | problem | fix |", "|---|---|---|---|---|"]
    for p in exc.problems:
        rows.append(f"| `{p.file}` | {p.line or ''} | `{p.key or ''}` | {p.message} | {p.fix} |")
    return "\n" + "\n".join(rows) + "\n"


# --- the fleet tables: one row per host, and one row per differing key -------------------


def _aligned(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def host_table(results: list[HostResult]) -> list[str]:
    """The terminal table: host, result, time, reason (errors and key names, never values)."""
    rows = [("host", "path", "result", "time", "reason")]
    rows += [
        (r.host, r.path or "–", r.status, f"{r.seconds:.2f}s", r.reason or "–") for r in results
    ]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    total = ", ".join(f"{n} {status}" for status, n in counts.items())
    hosts = len(dict.fromkeys(r.host for r in results))
    where = f"{len(results)} target(s) on {hosts} host(s)" if hosts < len(results) else ""
    return [*_aligned(rows), f"{where or f'{hosts} host(s)'}: {total}"]


def key_rows(results: list[HostResult]) -> list[tuple[str, str, str]]:
    """(host, key, difference) for every key that differs and every mode drift."""
    rows = []
    for r in results:
        for label, keys in (("added", r.added), ("removed", r.removed), ("changed", r.changed)):
            rows += [(r.host, target_key(r, key), label) for key in keys]
        if r.mode_drift and r.mode_before is not None and r.mode_after is not None:
            mode = target_key(r, "(file mode)")
            rows.append((r.host, mode, f"{r.mode_before:04o} instead of {r.mode_after:04o}"))
    return rows


def _differences_markdown(results: list[HostResult]) -> str:
    rows = [f"| `{host}` | `{key}` | {what} |" for host, key, what in key_rows(results)]
    rows += [
        f"| `{r.host}` | – | {r.status}: {r.reason} |"
        for r in results
        if r.status in ("failed", "skipped")
    ]
    if not rows:
        return ""
    return "\n#### Differences and failures\n\n| host | key | difference |\n|---|---|---|\n" + (
        "\n".join(rows) + "\n"
    )
