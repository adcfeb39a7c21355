"""The `docker` format: `docker run --env-file` / podman / Kamal (docker/cli `pkg/kvfile`).

docker's reader takes each line as it stands: no quotes, no escapes, no interpolation,
one line per value (`bufio.Scanner`: a line ends at LF, one CR before it is dropped, and
a line longer than 64 KiB fails the whole file). So the encoder writes `KEY=value`
verbatim and refuses what that cannot carry: a line break, a value ending in CR, or a
line over the scanner's limit.
"""

from __future__ import annotations

from sops_deploy.envfile.common import GO_SPACE, RenderError, Unparseable

# bufio.MaxScanTokenSize: a line (with its LF) longer than this fails the whole file.
MAX_LINE = 64 * 1024
_BOM = "\ufeff"


def quote(key: str, value: str) -> str:
    """The value as written after `KEY=` (RenderError if docker cannot read it back)."""
    if "\n" in value:
        raise RenderError(
            "it contains a line break, and docker reads one line per value "
            "(use --format compose, or store it base64-encoded)"
        )
    if value.endswith("\r"):
        raise RenderError("it ends with a carriage return, which docker drops")
    if len(f"{key}={value}\n".encode()) > MAX_LINE:
        raise RenderError(f"its line is longer than docker's {MAX_LINE}-byte line limit")
    return value


def model(text: str) -> dict[str, str | None]:
    """docker/cli `kvfile.Parse`, line by line; a bare `KEY` (from the environment) is None.

    Raises Unparseable where docker refuses the whole file.
    """
    out: dict[str, str | None] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the scanner yields no empty token after a final LF
    for number, raw in enumerate(lines, start=1):
        if len(raw.encode()) + 1 > MAX_LINE:
            raise Unparseable("line too long")
        line = raw.removesuffix("\r")
        if number == 1:
            line = line.removeprefix(_BOM)
        line = line.lstrip("".join(GO_SPACE))
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        if not key:
            raise Unparseable("no variable name")
        if " " in key or "\t" in key:
            raise Unparseable("variable contains whitespaces")
        out[key] = value if eq else None
    return out
