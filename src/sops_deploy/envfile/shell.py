"""The `shell` format: `set -a; . ./.env` in bash or dash.

The encoder writes POSIX single quotes (`'` as `'\\''`), which both shells read verbatim,
and refuses the names bash will not let a file deliver (read-only or dynamic variables;
the list is measured from bash itself by a test). The model reads a file as the shells
do, and marks as unknown (None) any value the shell would expand — `$X`, `${…}`, `$(…)`,
backquotes, or a leading `~` — so that `check` sees such a hand edit as drift.
"""

from __future__ import annotations

from sops_deploy.envfile.common import RenderError, Unparseable

# Names bash 5.2 does not deliver from `set -a; . ./.env; exec app` (read-only, or re-set
# by bash: SHLVL, PIPESTATUS, ...), OPTIND also in dash; test_refusals measures them.
_RESERVED_NAMES = (
    "BASHOPTS BASHPID BASH_ALIASES BASH_ARGC BASH_ARGV BASH_ARGV0 BASH_CMDS BASH_LINENO "
    "BASH_SOURCE BASH_SUBSHELL BASH_VERSINFO COMP_WORDBREAKS DIRSTACK EPOCHREALTIME "
    "EPOCHSECONDS EUID FUNCNAME GROUPS HISTCMD LINENO OPTIND PIPESTATUS PPID RANDOM SECONDS "
    "SHELLOPTS SHLVL SRANDOM UID _"
)
RESERVED = frozenset(_RESERVED_NAMES.split())
_BLANK = " \t"
_OPERATORS = ";&|<>()"
_NAME_START = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
_NAME_CHARS = _NAME_START + "0123456789"


def quote(key: str, value: str) -> str:
    """POSIX single quotes (RenderError for a name the shell will not deliver)."""
    if key in RESERVED:
        raise RenderError(f"bash does not let a file set {key}")
    return "'" + value.replace("'", "'\\''") + "'"


def model(text: str) -> dict[str, str | None]:
    """Assignments as bash/dash read them; None for a value the shell would expand.

    Raises Unparseable for anything else a shell would do with the file (a command, a
    redirection, an unterminated quote): its keys cannot be compared one by one.
    """
    out: dict[str, str | None] = {}
    pos, end = 0, len(text)
    while pos < end:
        c = text[pos]
        if c in _BLANK or c == "\n":
            pos += 1
        elif c == "#":
            cut = text.find("\n", pos)
            pos = end if cut == -1 else cut
        else:
            word, value, pos = _word(text, pos)
            if word == "export":
                continue
            if value is None or not word or word[0] not in _NAME_START:
                raise Unparseable("not an assignment")
            if any(ch not in _NAME_CHARS for ch in word):
                raise Unparseable("not an assignment")
            out[word] = value[0]
    return out


def _word(text: str, pos: int) -> tuple[str, tuple[str | None] | None, int]:
    """(name, (value,) or None when the word has no `=`, position after the word)."""
    start, end = pos, len(text)
    while pos < end and text[pos] in _NAME_CHARS:
        pos += 1
    name = text[start:pos]
    if pos >= end or text[pos] != "=":
        if name == "export" and (pos >= end or text[pos] in _BLANK + "\n"):
            return name, None, pos
        raise Unparseable("not an assignment")
    pos += 1
    chars: list[str] = []
    expands = pos < end and text[pos] == "~"  # tilde expansion at the start of the value
    while pos < end:
        c = text[pos]
        if c in _BLANK or c == "\n":
            break
        if c in _OPERATORS:
            raise Unparseable("shell syntax")
        if c == "'":
            cut = text.find("'", pos + 1)
            if cut == -1:
                raise Unparseable("unterminated quote")
            chars.append(text[pos + 1 : cut])
            pos = cut + 1
        elif c == '"':
            pos, expanded = _double(text, pos + 1, chars)
            expands = expands or expanded
        elif c == "\\":
            if pos + 1 < end and text[pos + 1] != "\n":
                chars.append(text[pos + 1])
            pos += 2
        elif c == "`" or text.startswith(("$(", "${"), pos):
            pos, expands = _substitution(text, pos), True
        else:
            if c in "$`" or (c == ":" and text.startswith("~", pos + 1)):
                expands = True
            chars.append(c)
            pos += 1
    return name, (None if expands else "".join(chars),), pos


def _substitution(text: str, pos: int) -> int:
    """Past a `` `…` ``, `$(…)` or `${…}` starting at `pos` (nesting counted, not parsed)."""
    if text[pos] == "`":
        cut = text.find("`", pos + 1)
        if cut == -1:
            raise Unparseable("unterminated backquote")
        return cut + 1
    opening = text[pos + 1]
    closing = ")" if opening == "(" else "}"
    depth, pos = 0, pos + 1
    while pos < len(text):
        if text[pos] == opening:
            depth += 1
        elif text[pos] == closing:
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    raise Unparseable("unterminated substitution")


def _double(text: str, pos: int, chars: list[str]) -> tuple[int, bool]:
    """Inside "…" from `pos`: appends the text; True if the shell would expand something."""
    expands = False
    end = len(text)
    while pos < end:
        c = text[pos]
        if c == '"':
            return pos + 1, expands
        if c == "\\" and pos + 1 < end and text[pos + 1] in '$`"\\\n':
            if text[pos + 1] != "\n":
                chars.append(text[pos + 1])
            pos += 2
            continue
        if c in "$`":
            expands = True
        chars.append(c)
        pos += 1
    raise Unparseable("unterminated quote")
