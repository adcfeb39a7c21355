"""Text from a server or a file, made inert for the step summary's Markdown.

GitHub renders `GITHUB_STEP_SUMMARY` as GitHub-flavoured Markdown with inline HTML, so a
lock file whose `user` is `[login](https://evil.example)` or `<img src=…>` would be a live
link or a tracking image in the job's page (DESIGN invariant 9). Two forms:

- `text`: every ASCII punctuation character backslash-escaped — the CommonMark escape
  that turns each into a literal (no emphasis, link, image, HTML tag, entity, table
  pipe); `:`, `.` and `@` escaped also stop GFM's autolinks (`https://…`, `www.…`,
  `a@b.c`), whose triggers are those characters unescaped. Line breaks become spaces.
- `code`: a code span (nothing inside is interpreted) fenced by more backticks than the
  text holds; `|` escaped for the table; line breaks become spaces.
"""

from __future__ import annotations

import re

_PUNCT = re.compile(r"""([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~])""")
_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def text(value: str) -> str:
    """`value` as literal Markdown text (a paragraph or a table cell)."""
    return _PUNCT.sub(r"\\\1", _BREAKS.sub(" ", value))


def code(value: str) -> str:
    """`value` as a code span, safe in a table cell."""
    flat = _BREAKS.sub(" ", value).replace("|", "\\|")
    longest = max((len(m) for m in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat}{pad}{fence}"
