"""The redaction layer: which values are masked, every form a value takes in our output,
and one matcher that finds all of them in a single pass over a text.

Policy (docs/action-and-masking.md, "Masking"): a value is masked unless its key is public (see
`publicity.py`) or it cannot be a secret in practice: a boolean word (true/false/yes/no/
on/off, any case) or shorter than `MIN_SECRET` characters — the length rule does not
apply to a key whose name says secret (`publicity.names_a_secret`: `DB_PASSWORD=Zq9` is
masked). A value shorter than `MIN_SECRET` is replaced only as a whole word (`Zq9` but not
the `zq9` of `zq9x`), as is a short all-letter one. A masked value is looked for
in every form it can reach our output in: raw and line by line; as each dotenv-like
format writes it (compose/dotenv double-quote escapes, compose `$$`, shell single quotes,
through the envfile encoders); JSON-escaped (`\\u00fc` and UTF-8 forms); Python-repr.

Matching: one Aho-Corasick automaton (ahocorasick-rs, built lazily once per set of
values) finds every occurrence, overlapping ones included, in time linear in the text;
the union of the occurrences is replaced. A value made only of letters and at most
`WORD_MAX` long ("deploy") is replaced only as a whole word, so that "deploying" stays
readable and does not reveal the value by its `***ing` remainder.

Texts the user typed (`Redactor.keep`: file paths, remote paths, host names) are no
secrets: an occurrence of a masked value that lies inside one of them (a database named
like the app, `myapp`, in `/srv/myapp/.env`) is left readable there, and only there.
"""

from __future__ import annotations

import json
import re
import threading

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

    A short text is searched directly (each substring whose length is that of some form,
    looked up in a set) while the automaton is not needed: a run that prints only short
    lines never pays for building it. The first long text builds it, once per set of values.
    """

    SHORT = 200  # characters
    SHORT_LENGTHS = 48  # distinct form lengths up to which the direct search is cheaper

    def __init__(self) -> None:
        self._owner: dict[str, str | None] = {}  # form -> key (None: key material, unnamed)
        self._values: set[tuple[str, int]] = set()
        self._lengths: tuple[int, ...] = ()
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
        from sops_deploy.plan.publicity import names_a_secret

        minimum = 1 if names_a_secret(key) else MIN_SECRET
        with self._lock:
            if (value, minimum) in self._values:
                return []
            self._values.add((value, minimum))
            new = [f for f in forms(value, minimum) if f not in self._owner]
            for form in new:
                self._owner[form] = key
            if new:
                self._matcher = None
                self._lengths = tuple(sorted({*self._lengths, *map(len, new)}))
        return sorted(f for f in new if "\n" not in f and "\r" not in f)

    def __len__(self) -> int:
        return len(self._owner)

    def _current(self) -> _Matcher | None:
        with self._lock:
            if self._matcher is None and self._owner:
                self._matcher = _Matcher(list(self._owner))
            return self._matcher

    def _spans(self, text: str) -> list[tuple[int, int, str]]:
        """Every occurrence of a form in `text` (word forms anywhere, too)."""
        if not self._owner or not text:
            return []
        lengths = self._lengths
        if self._matcher is None and len(text) <= self.SHORT and len(lengths) <= self.SHORT_LENGTHS:
            owner, n = self._owner, len(text)
            return [
                (i, i + size, text[i : i + size])
                for size in lengths
                if size <= n
                for i in range(n - size + 1)
                if text[i : i + size] in owner
            ]
        matcher = self._current()
        return matcher.spans(text) if matcher is not None else []

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
