"""The `node` format: Node's `dotenv` package (npm) and Node's own `util.parseEnv` /
`--env-file`.

Neither has an escape for a backslash or a quote: npm dotenv strips one pair of quotes
and, inside double quotes only, turns the two characters `\\n` / `\\r` into a line break.
So the encoder picks a quote the value does not contain — `'…'`, else `"…"` (only when the
value has no `\\n` / `\\r` pair), else `` `…` `` — and refuses a value that fits none. A
line break is written literally inside the quotes; a CR is refused (both readers turn CR
into LF). The rendered file is re-read with the model below, so a value the regular
expression would still split differently is refused too. A value that ends in a backslash
is written without quotes when it can be (no `#`, line break or blank at either end, no
quote first): inside any quote, both readers take that backslash as escaping the closing
quote and read on to the next one in the file. Where it cannot be, it is refused.
"""

from __future__ import annotations

import re

from sops_deploy.envfile.common import RenderError

# JavaScript's \\s and line terminators (no u flag), spelled out for Python's re.
_JS_SPACE = (
    "\t\n\v\f\r \xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_LT = "\n\r\u2028\u2029"
_S = f"[{_JS_SPACE}]"
_BOL = f"(?:\\A|(?<=[{_LT}]))"
_EOL = f"(?=[{_LT}]|\\Z)"
# npm dotenv's LINE (lib/main.js), translated: \\w is ASCII, `.` stops at line terminators.
_LINE = re.compile(
    _BOL
    + f"{_S}*(?:export{_S}+)?([A-Za-z0-9_.-]+)(?:{_S}*={_S}*?|:{_S}+?)"
    + f"({_S}*'(?:\\\\'|[^'])*'|{_S}*\"(?:\\\\\"|[^\"])*\"|{_S}*`(?:\\\\`|[^`])*`|[^#\\r\\n]+)?"
    + f"{_S}*(?:#[^{_LT}]*)?{_EOL}"
)
_BARE = re.compile("[^#\r\n\u2028\u2029'\"`][^#\r\n\u2028\u2029]*")
_UNQUOTE = re.compile(_BOL + r"(['\"`])([\s\S]*)\1" + _EOL)


def ends_in_escaping_backslash(value: str) -> bool:
    """Whether the value ends in a backslash and cannot go without quotes (refused)."""
    return value.endswith("\\") and not (_BARE.fullmatch(value) and value == value.strip(_JS_SPACE))


def quote(key: str, value: str) -> str:
    """The value in the first quote it does not contain (RenderError if none will do)."""
    if "\r" in value:
        raise RenderError("it contains a carriage return, which Node's readers turn into LF")
    if value.endswith("\\"):
        if not ends_in_escaping_backslash(value):
            return value
        raise RenderError(
            "it ends in a backslash and needs quotes (it holds #, a line break, a quote "
            "first or blanks at an end), and Node's readers take that backslash as escaping "
            "the closing quote"
        )
    if "'" not in value:
        return "'" + value + "'"
    if '"' not in value and "\\n" not in value and "\\r" not in value:
        return '"' + value + '"'
    if "`" not in value:
        return "`" + value + "`"
    raise RenderError("it contains ', \" and `, and Node's readers have no escape for a quote")


def model(text: str) -> dict[str, str | None]:
    """npm dotenv `parse` (v17), regular expression for regular expression."""
    out: dict[str, str | None] = {}
    lines = re.sub(r"\r\n?", "\n", text)
    for match in _LINE.finditer(lines):
        value = (match.group(2) or "").strip(_JS_SPACE)  # String.prototype.trim
        first = value[:1]
        value = _UNQUOTE.sub(r"\2", value)
        if first == '"':
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        out[match.group(1)] = value
    return out
