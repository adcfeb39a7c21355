"""Values read back from a server are secrets like decrypted ones (DESIGN invariant 12).

A server's current file holds the credentials running now: a post-command that prints
it (`cat .env; exit 1`) shows them after a rollback, and the same bytes feed the diff.
`ReadBack.file` hands every value of such a file to the run's masking (the Reporter's
`mask`: `::add-mask::` on GitHub, the redaction layer everywhere) the moment it is read,
before anything can print it. The file is read twice over, so that no form escapes:
as the target format's reader reads it (`envfile.read_values`), and line by line
(`KEY=value` with quotes and `export` dropped; a line without `=`, or a file of another
kind, whole), since a hand-edited file may not parse at all. Keys the masking policy makes
public stay readable; the length and boolean rules are the Reporter's, as for any value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

Mask = Callable[[list[str | tuple[str, str]]], None]
_QUOTES = ("'", '"', "`")


def _no_mask(_: list[str | tuple[str, str]]) -> None:
    return None


@dataclass(frozen=True)
class ReadBack:
    """Where values read from a server go: the run's mask; which key names are public."""

    mask: Mask = _no_mask
    public: frozenset[str] = field(default_factory=frozenset)

    def file(self, content: bytes | None, fmt: str) -> None:
        """Mask every value of a server file (read as `fmt`), before anything prints."""
        if not content:
            return
        from sops_deploy import envfile

        found: list[str | tuple[str, str]] = []
        if fmt != "raw":
            parsed = envfile.read_values(content, fmt) or {}
            found += [(k, v) for k, v in parsed.items() if v and k not in self.public]
        found += self._lines(content.decode("utf-8", "replace"), keyed=fmt != "raw")
        self.mask(found)

    def values(self, pairs: Iterable[tuple[str, bytes | None]]) -> None:
        """Mask one value per key (a `files` directory: file name → its bytes)."""
        self.mask(
            [
                (key, data.decode("utf-8", "replace"))
                for key, data in pairs
                if data and key not in self.public
            ]
        )

    def _lines(self, text: str, *, keyed: bool) -> list[str | tuple[str, str]]:
        out: list[str | tuple[str, str]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or (keyed and line.startswith("#")):
                continue
            key, eq, value = line.partition("=") if keyed else ("", "", line)
            key = key.strip().removeprefix("export ").strip()
            if not eq or not key:
                out.append(line)
                continue
            if key in self.public:
                continue
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in _QUOTES:
                value = value[1:-1]
            if value:
                out.append((key, value))
        return out
