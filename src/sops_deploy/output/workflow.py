"""GitHub workflow commands as text, GitHub's size limits, and the neutralising of text
that comes from outside (a server, a file) so that it can never act as a command.

The runner reads a stdout line as a command when, after leading blanks, it starts with
`::`. Every text this tool prints goes through `neutralise` (after redaction): control
characters (ANSI escapes, CR, NUL, ...) are shown escaped, a line that would start a
command has its first `:` shown as `\\x3a`, and `::stop-commands::` never appears. The
commands the Reporter itself writes are built by `command`, whose message and properties
are escaped as the runner expects (`%0A` for a line break), so they stay one line.
"""

from __future__ import annotations

import re

# GitHub's documented limits.
SUMMARY_LIMIT = 1024 * 1024  # "$GITHUB_STEP_SUMMARY ... up to a size of 1024k" per step
OUTPUTS_LIMIT = 1_000_000  # "Outputs can be a maximum of 1 MB per job" (UTF-16 size)
# What this tool lets itself use: room is left for other steps of the same job.
SUMMARY_BUDGET = SUMMARY_LIMIT - 64 * 1024
OUTPUTS_BUDGET = 900_000
LINE_LIMIT = 300  # characters of one line of a server's output (post-command) shown

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_COMMAND_START = re.compile(r"^([ \t]*):(?=:)", re.MULTILINE)
_STOP = re.compile(r"::(?=stop-commands)", re.IGNORECASE)


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    named = {"\r": "\\r", "\x1b": "\\x1b"}
    if ch in named:
        return named[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def neutralise(text: str) -> str:
    """`text` safe to print: control characters escaped (tab and newline kept), no line
    that starts a workflow command, no `::stop-commands`."""
    text = _CONTROL.sub(_escape_char, text)
    text = _STOP.sub(r"\\x3a:", text)
    return _COMMAND_START.sub(r"\1\\x3a", text)


def one_line(text: str) -> str:
    """Neutralised and on one line (newlines shown as `\\n`): for a server's text inside
    one of our messages (an SFTP error, a lock holder's name)."""
    return neutralise(text.replace("\n", "\\n"))


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_prop(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def command(kind: str, message: str, **props: str | int | None) -> str:
    """`::kind prop=value,...::message`, every part escaped; props that are None are left out.

    `message` and the properties must already be redacted and neutralised.
    """
    parts = [f"{name}={escape_prop(str(value))}" for name, value in props.items() if value]
    head = f"::{kind} {','.join(parts)}::" if parts else f"::{kind}::"
    return head + escape_data(message)


def cut(text: str, limit: int = LINE_LIMIT) -> str:
    """At most `limit` characters, marked when cut. Only ever applied after redaction."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… ({len(text) - limit} more characters)"


def utf16_size(text: str) -> int:
    """The size GitHub counts for an output (UTF-16 code units x 2)."""
    return len(text.encode("utf-16-le"))
