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
    raw: dict[str, str] = {}
    state = "pre_key"
    key: list[str] = []
    value: list[str] = []
    key_ws: int | None = None
    value_ws: int | None = None

    def push() -> None:
        k = "".join(key[:key_ws] if key_ws is not None else key)
        v = "".join(value)
        if _nonchar(k + v):
            raise Unparseable("invalid UTF-8 (systemd fails the whole file)")
        raw.pop(k, None)
        raw[k] = v

    for c in text.split("\x00", 1)[0]:  # a C string: reading stops at NUL
        if state == "pre_key":
            if c in _COMMENTS:
                state = "comment"
            elif c not in _WHITESPACE:
                state, key, key_ws = "key", [c], None
        elif state == "key":
            if c in _NEWLINE:
                state, key = "pre_key", []
            elif c == "=":
                state, value, value_ws = "pre_value", [], None
            else:
                if c not in _WHITESPACE:
                    key_ws = None
                elif key_ws is None:
                    key_ws = len(key)
                key.append(c)
        elif state == "pre_value":
            if c in _NEWLINE:
                push()
                state = "pre_key"
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif c not in _WHITESPACE:
                state = "value"
                value.append(c)
        elif state == "value":
            if c in _NEWLINE:
                if value_ws is not None:
                    del value[value_ws:]
                push()
                state = "pre_key"
            elif c == "\\":
                state, value_ws = "value_escape", None
            else:
                if c not in _WHITESPACE:
                    value_ws = None
                elif value_ws is None:
                    value_ws = len(value)
                value.append(c)
        elif state == "value_escape":
            state = "value"
            if c not in _NEWLINE:
                value.append(c)
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value.append(c)
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value.append(c)
        elif state == "double_escape":
            state = "double"
            if c in _NEED_ESCAPE:
                value.append(c)
            elif c != "\n":
                value += ["\\", c]
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in _NEWLINE:
                state = "pre_key"
        else:  # comment_escape (v252: the next character, even a line break, stays comment)
            state = "comment"
    if state not in ("pre_key", "key", "comment", "comment_escape"):
        if state == "value" and value_ws is not None:
            del value[value_ws:]
        push()
    return {k: v for k, v in raw.items() if _NAME.fullmatch(k)}
