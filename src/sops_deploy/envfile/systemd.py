"""The `systemd` format: a unit's `EnvironmentFile=` (systemd's `load_env_file`, then PID 1's
`env_assignment_is_valid` filter).

systemd reads `KEY="…"` with `\\` escaping only `"` `\\` `` ` `` `$` inside double quotes,
keeps a literal line break or any other control character inside the quotes, and expands
nothing. It fails the whole file on text that is not valid UTF-8 by systemd's rules, which
refuse the Unicode non-characters U+FDD0–U+FDEF and U+xFFFE/U+xFFFF: the encoder refuses
those values. Measured against systemd 252 (Debian 12); old releases (before about v239)
dropped a value with a line break or a control character, so docs/formats.md names 252+.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sops_deploy.envfile.common import RenderError, Unparseable

_WHITESPACE = " \t\n\r"
_NEWLINE = "\n\r"
_COMMENTS = "#;"
_NEED_ESCAPE = '"\\`$'
_NONCHARACTER = re.compile(r"[\ufdd0-\ufdef\ufffe\uffff]|[\U00010000-\U0010ffff]")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _nonchar(value: str) -> bool:
    for m in _NONCHARACTER.finditer(value):
        c = ord(m.group(0))
        if c < 0x10000 or (c & 0xFFFE) == 0xFFFE:
            return True
    return False


def quote(key: str, value: str) -> str:
    """`"value"` with systemd's double-quote escapes (RenderError if systemd cannot read it)."""
    if _nonchar(value):
        raise RenderError(
            "it contains a Unicode non-character (U+FDD0-U+FDEF, U+xFFFE, U+xFFFF), and "
            "systemd then refuses the whole file"
        )
    return '"' + "".join("\\" + c if c in _NEED_ESCAPE else c for c in value) + '"'


def model(text: str) -> dict[str, str | None]:
    """systemd v252 `parse_env_file_internal` as `load_env_file` drives it, then PID 1's filter.

    A port of the state machine, character by character; an assignment PID 1 would drop
    (bad name, bad value) is left out, and a later one replaces an earlier one. Raises
    Unparseable where `load_env_file` fails (a non-character in a key or value).
    """
    machine = _Machine()
    state = "pre_key"
    for c in text.split("\x00", 1)[0]:  # a C string: reading stops at NUL
        state = _STEP[state](machine, state, c)
    if state not in _BETWEEN:
        if state == "value" and machine.value_ws is not None:
            del machine.value[machine.value_ws :]
        machine.push()
    return {k: v for k, v in machine.raw.items() if _NAME.fullmatch(k)}


class _Machine:
    """The parser's registers: the key and the value being read, where trailing
    whitespace began in each (systemd strips it), and the assignments read so far. Each
    step takes the state and one character and returns the next state."""

    def __init__(self) -> None:
        self.raw: dict[str, str] = {}
        self.key: list[str] = []
        self.value: list[str] = []
        self.key_ws: int | None = None
        self.value_ws: int | None = None

    def push(self) -> None:
        k = "".join(self.key[: self.key_ws] if self.key_ws is not None else self.key)
        v = "".join(self.value)
        if _nonchar(k + v):
            raise Unparseable("invalid UTF-8 (systemd fails the whole file)")
        self.raw.pop(k, None)
        self.raw[k] = v

    def between(self, state: str, c: str) -> str:
        """Outside a value: before a key, in a key, in a comment."""
        if state == "pre_key":
            if c in _COMMENTS:
                return "comment"
            if c not in _WHITESPACE:
                self.key, self.key_ws = [c], None
                return "key"
            return state
        if state == "key":
            if c in _NEWLINE:
                self.key = []
                return "pre_key"
            if c == "=":
                self.value, self.value_ws = [], None
                return "pre_value"
            if c not in _WHITESPACE:
                self.key_ws = None
            elif self.key_ws is None:
                self.key_ws = len(self.key)
            self.key.append(c)
            return state
        if state == "comment":
            if c == "\\":
                return "comment_escape"
            return "pre_key" if c in _NEWLINE else state
        # comment_escape (v252: the next character, even a line break, stays comment)
        return "comment"

    def unquoted(self, state: str, c: str) -> str:
        """A value outside quotes: before it starts, in it, after a backslash."""
        if state == "pre_value":
            if c in _NEWLINE:
                self.push()
                return "pre_key"
            if c in _OPENING:
                return _OPENING[c]
            if c not in _WHITESPACE:
                self.value.append(c)
                return "value"
            return state
        if state == "value":
            if c in _NEWLINE:
                if self.value_ws is not None:
                    del self.value[self.value_ws :]
                self.push()
                return "pre_key"
            if c == "\\":
                self.value_ws = None
                return "value_escape"
            if c not in _WHITESPACE:
                self.value_ws = None
            elif self.value_ws is None:
                self.value_ws = len(self.value)
            self.value.append(c)
            return state
        if c not in _NEWLINE:  # value_escape
            self.value.append(c)
        return "value"

    def quoted(self, state: str, c: str) -> str:
        """A value inside single or double quotes, and after a backslash inside double."""
        if state == "single":
            if c == "'":
                return "pre_value"
            self.value.append(c)
            return state
        if state == "double":
            if c == '"':
                return "pre_value"
            if c == "\\":
                return "double_escape"
            self.value.append(c)
            return state
        if c in _NEED_ESCAPE:  # double_escape
            self.value.append(c)
        elif c != "\n":
            self.value += ["\\", c]
        return "double"


_OPENING = {"'": "single", '"': "double", "\\": "value_escape"}
_BETWEEN = ("pre_key", "key", "comment", "comment_escape")
_STEP: dict[str, Callable[[_Machine, str, str], str]] = {
    **dict.fromkeys(_BETWEEN, _Machine.between),
    **dict.fromkeys(("pre_value", "value", "value_escape"), _Machine.unquoted),
    **dict.fromkeys(("single", "double", "double_escape"), _Machine.quoted),
}
