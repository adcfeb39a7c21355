"""The redaction layer: which values are masked, every form a value takes in our output,
and the matcher that finds all of them in a text.

Policy (docs/action-and-masking.md, "Masking"): a value is masked unless its key is public (see
`publicity.py`) or it cannot be a secret in practice: a boolean word (true/false/yes/no/
on/off, any case) or shorter than `MIN_SECRET` characters — the length rule does not
apply to a key whose name says secret (`publicity.names_a_secret`: `DB_PASSWORD=Zq9` is
masked). A value shorter than `MIN_SECRET` is replaced only as a whole word (`Zq9` but not
the `zq9` of `zq9x`), as is a short all-letter one. A masked value is looked for
in every form it can reach our output in: raw and line by line; as each dotenv-like
format writes it (compose/dotenv double-quote escapes, compose `$$`, shell single quotes,
through the envfile encoders); JSON-escaped (`\\u00fc` and UTF-8 forms); Python-repr.

Matching: every occurrence, overlapping ones included, is found and the union replaced.
A text is searched directly (each substring whose length is that of some form, looked up
in a set) until the direct searches of this set of values have cost as much as building
one Aho-Corasick automaton (ahocorasick-rs) over all its forms would; then the automaton
is built, once per set, and finds them in time linear in the text. This is the ski-rental
rule: never more than twice the cheaper of the two, and a 10,000-key deploy, which prints
a few short texts, never builds the automaton (162 ms and 34 MiB over 880 kB of forms).
A value made only of letters and at most `WORD_MAX` long ("deploy") is replaced only as
a whole word, so that "deploying" stays readable and does not reveal the value by its
`***ing` remainder.

Texts the user typed (`Redactor.keep`: file paths, remote paths, host names) are no
secrets: an occurrence of a masked value that lies inside one of them (a database named
like the app, `myapp`, in `/srv/myapp/.env`) is left readable there, and only there.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable

MIN_SECRET = 4
WORD_MAX = 12
BOOLEANS = frozenset(("true", "false", "yes", "no", "on", "off"))
REPLACEMENT = "***"
_ESCAPING_FORMATS = ("compose", "dotenv", "shell")


def is_maskable(value: str, minimum: int = MIN_SECRET) -> bool:
    """Whether a value could be a secret: not a boolean word, at least `minimum` long."""
    text = value.strip()
    return len(text) >= max(1, minimum) and text.lower() not in BOOLEANS


def _is_word(form: str) -> bool:
    return (form.isalpha() and len(form) <= WORD_MAX) or len(form) < MIN_SECRET


def _encoded(value: str) -> set[str]:
    """`value` as each format's encoder writes it (quotes removed), JSON- and repr-escaped."""
    from sops_deploy.envfile import RenderError, render

    out = {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1]}
    for fmt in _ESCAPING_FORMATS:
        try:
            line = render({"K": value}, fmt).decode("utf-8")
        except (RenderError, ValueError):
            continue
        quoted = line[2:-1]  # "K=" ... "\n"
        if len(quoted) >= 2 and quoted[0] == quoted[-1] and quoted[0] in "'\"":
            quoted = quoted[1:-1]
        out.add(quoted)
    return out


_PLAIN = re.compile(r"[ !#%&(-\[\]-~]*")  # printable ASCII no encoder changes: no " $ ' \\


def forms(value: str, minimum: int = MIN_SECRET) -> set[str]:
    """Every text by which `value` (or one of its lines) could appear in our output."""
    if _PLAIN.fullmatch(value):  # the common case: every form is the value itself
        text = value.strip()
        return {text} if is_maskable(text, minimum) else set()
    return every_form(value, minimum)


def every_form(value: str, minimum: int = MIN_SECRET) -> set[str]:
    """`forms` without the shortcut: through every encoder (a test keeps the two equal)."""
    pieces = {value, *value.splitlines()}
    found: set[str] = set()
    for piece in pieces:
        for form in (piece, *_encoded(piece)):
            candidate = form.strip()  # covers the padded form too
            if is_maskable(candidate, minimum):
                found.add(candidate)
    return found


def github_lines(value: str) -> list[str]:
    """The texts to register with `::add-mask::`: GitHub masks line by line, so a value's
    lines (stripped) and its escaped forms; nothing short or boolean."""
    return sorted(form for form in forms(value) if "\n" not in form and "\r" not in form)


class _Matcher:
    """One immutable automaton over a set of forms; `spans` gives every occurrence."""

    def __init__(self, forms: list[str]) -> None:
        from ahocorasick_rs import AhoCorasick, Implementation, MatchKind

        # The noncontiguous NFA builds in time linear in the patterns; the default (a DFA
        # for small sets) takes quadratic time on a long repetitive value (50k "p"s).
        self._automaton = AhoCorasick(
            forms, matchkind=MatchKind.Standard, implementation=Implementation.NoncontiguousNFA
        )
        self.forms = forms

    def spans(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, form) of every occurrence, overlapping ones included."""
        return [
            (start, end, self.forms[i])
            for i, start, end in self._automaton.find_matches_as_indexes(text, overlapping=True)
        ]


def _word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _whole_words(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """The spans without word forms that stand inside a longer word ("deploy"ing)."""
    return [
        (start, end, form)
        for start, end, form in spans
        if not _is_word(form)
        or not (
            (start > 0 and _word_char(text[start - 1]))
            or (end < len(text) and _word_char(text[end]))
        )
    ]


def _outside(
    text: str, spans: list[tuple[int, int, str]], kept: tuple[str, ...]
) -> list[tuple[int, int, str]]:
    """The spans that do not lie inside an occurrence of a kept text."""
    inside: list[tuple[int, int]] = []
    for k in kept:
        start = text.find(k)
        while start != -1:
            inside.append((start, start + len(k)))
            start = text.find(k, start + 1)
    if not inside:
        return spans
    return [span for span in spans if not any(a <= span[0] and span[1] <= b for a, b in inside)]


class Redactor:
    """The set of masked values and the matcher over all their forms (thread-safe).

    Costs are counted in set lookups: a direct search of a text of n characters costs one
    per position and distinct form length; building the automaton costs `BUILD_COST` per
    character of the forms (measured: ~180 ns a character against ~100 ns a lookup).
    """

    BUILD_COST = 2  # lookups per character of the forms

    def __init__(self) -> None:
        self._owner: dict[str, str | None] = {}  # form -> key (None: key material, unnamed)
        self._values: set[tuple[str, int]] = set()
        self._lengths: tuple[int, ...] = ()
        self._form_chars = 0
        self._spent = 0  # lookups spent in direct searches of this set of values
        self._matcher: _Matcher | None = None
        self._kept: tuple[str, ...] = ()  # texts the user passed: never masked inside
        self._lock = threading.Lock()

    def keep(self, texts: list[str]) -> None:
        """Leave `texts` (paths and names the user passed) readable wherever they appear
        whole; a masked value stays masked everywhere else."""
        with self._lock:
            self._kept = tuple(sorted({*self._kept, *(t for t in texts if t)}, key=len))

    def add(self, value: str, key: str | None = None) -> list[str]:
        """Mask `value` (named by `key`, if any); returns its new lines for ::add-mask::.

        Values the policy leaves readable (`is_maskable` false for every line) add nothing;
        a key whose name says secret has its value masked whatever its length.
        """
        return self.add_all([(key, value)])

    def add_all(self, items: Iterable[tuple[str | None, str]]) -> list[str]:
        """`add` for many (key, value) pairs under one lock: every new line, per value sorted."""
        from sops_deploy.plan.publicity import names_a_secret

        lines: list[str] = []
        owner, values, plain = self._owner, self._values, _PLAIN.fullmatch
        with self._lock:
            lengths = set(self._lengths)
            before = len(owner)
            for key, value in items:
                minimum = 1 if names_a_secret(key) else MIN_SECRET  # a secret's name: any length
                if (value, minimum) in values:
                    continue
                values.add((value, minimum))
                if plain(value):  # the common case, `forms` inlined: one form, the value
                    text = value.strip()
                    new = [text] if is_maskable(text, minimum) and text not in owner else []
                else:
                    new = sorted(f for f in forms(value, minimum) if f not in owner)
                for form in new:
                    owner[form] = key
                    lengths.add(len(form))
                    self._form_chars += len(form)
                    if "\n" not in form and "\r" not in form:
                        lines.append(form)
            if len(owner) != before:
                self._matcher = None
                self._spent = 0
                self._lengths = tuple(sorted(lengths))
        return lines

    def __len__(self) -> int:
        return len(self._owner)

    def _matcher_for(self, n: int) -> _Matcher | None:
        """The automaton if it is built or now cheaper than searching `n` characters
        directly; None: search directly (the cost is counted)."""
        with self._lock:
            if self._matcher is None:
                direct = sum(n - size + 1 for size in self._lengths if size <= n)
                if self._spent + direct <= self.BUILD_COST * self._form_chars:
                    self._spent += direct
                    return None
                self._matcher = _Matcher(list(self._owner))
            return self._matcher

    def _spans(self, text: str) -> list[tuple[int, int, str]]:
        """Every occurrence of a form in `text` (word forms anywhere, too)."""
        if not self._owner or not text:
            return []
        matcher = self._matcher_for(len(text))
        if matcher is not None:
            return matcher.spans(text)
        owner, n = self._owner, len(text)
        return [
            (i, i + size, text[i : i + size])
            for size in self._lengths
            if size <= n
            for i in range(n - size + 1)
            if text[i : i + size] in owner
        ]

    def scrub(self, text: str) -> str:
        """`text` with every occurrence of every masked form replaced by `***`."""
        spans = _whole_words(text, self._spans(text))
        if spans and self._kept:
            spans = _outside(text, spans, self._kept)
        if not spans:
            return text
        spans.sort()
        out: list[str] = []
        pos = 0
        cur_start, cur_end = spans[0][0], spans[0][1]
        for start, end, _ in spans[1:]:
            if start <= cur_end:
                cur_end = max(cur_end, end)
                continue
            out += [text[pos:cur_start], REPLACEMENT]
            pos = cur_end
            cur_start, cur_end = start, end
        out += [text[pos:cur_start], REPLACEMENT, text[cur_end:]]
        return "".join(out)

    def keys_in(self, text: str) -> list[str]:
        """Names of the keys whose masked forms occur anywhere in `text` as GitHub sees it
        (plain substrings, whole words or not); "(key material)" for unnamed values."""
        names = (self._owner.get(form) or "(key material)" for _, _, form in self._spans(text))
        return sorted(set(names))
