"""Reader matrix: which real reader reads each format's file back exactly.

An adversarial corpus of values is rendered once per format (`sops_deploy.envfile.render`,
without the values the format refuses) and read back by every real reader this machine
has. A cell says `exact` when the reader gets every carried value back unchanged, or how
many it changes or cannot read (`n wrong`; when a reader fails on the whole file, each
value is tried alone); the row `refused by the format` counts the values the format
declines to write.

    python -m scripts.reader_matrix            # the table, as Markdown, on stdout
    python -m scripts.reader_matrix --readme   # and rewrite it into docs/formats.md
    python -m scripts.reader_matrix --core     # only the readers `make test` always has
    python -m scripts.reader_matrix --detail bash   # and which values a reader changes

(from the repository root, with the project's venv).

The extra readers are installed on demand: python-dotenv 1.2.2 and 0.21.1 (Compose v1's)
into throwaway venvs, godotenv with Go, and from Debian `ruby-dotenv`, `docker-compose`
(v1) and `php-vlucas-phpdotenv`; a reader that cannot be installed is left out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from sops_deploy import envfile
from sops_deploy.envfile import Entry
from tests import readers  # the harnesses the fidelity tests use

REPO = Path(__file__).resolve().parent.parent

FORMATS = ("compose", "dotenv", "shell", "docker", "systemd", "node")
CORPUS = [
    "plain", "", " lead", "trail ", "two  spaces", "tab\there", "a#b", "a #b", "#start",
    "'", '"', "`", "it's", 'say "hi"', "back`tick", "'\"`", "\\", "ends\\", "\\n", "\\r",
    "a\\tb", "\\\\", "\\'", '\\"', "\\$", "$", "$$", "$X", "${X}", "${X:-d}", "$(echo hi)",
    "`echo hi`", "pa$1wor$D", "~/d", "a:~/d", "=", "a=b=c", "line\nbreak", "two\n\nblank",
    "end\n", "\nstart", "cr\rin", "crlf\r\n", "uni é ☃ 𝄞", "\u2028", "\xa0nbsp", "\ufeffbom",
    "\x01ctl", "\x7fdel", "\ufdd0nonchar", "a;b", "a&b", "a|b", "<a>", "(a)", "{a}", "*",
    "?", "[a]", "!a", "%a%", "a\\\nb", "a b\\", "a\tb\\", "'q\\", "\"'mixed\\\"", "x" * 200,
    "export A=1", "A=1",
]  # fmt: skip
MARK_START = "<!-- reader-matrix:start -->"
MARK_END = "<!-- reader-matrix:end -->"
Read = Callable[[Path], "dict[str, str] | None"]


def keys() -> list[str]:
    return [f"RM_{i:03d}" for i in range(len(CORPUS))]


# --- readers --------------------------------------------------------------------------------


def _env_of(answer: dict[str, object]) -> dict[str, str] | None:
    if "error" in answer:
        return None
    env = answer.get("env")
    return dict(env) if isinstance(env, dict) else {}


def _shell(sh: str) -> Read:
    def read(path: Path) -> dict[str, str] | None:
        proc = subprocess.run(
            [sh, "-c", "set -a; . ./.env; exec /usr/bin/env -0"],
            cwd=path.parent,
            capture_output=True,
            env={"PATH": "/usr/bin:/bin", "X": "CANARY_X", "HOME": "/canary"},
            timeout=60,
            check=False,
        )
        if proc.returncode != 0:
            return None
        items = (i.decode("utf-8", "replace") for i in proc.stdout.split(b"\0") if i)
        return dict(i.partition("=")[::2] for i in items)

    return read


def _python_dotenv(version: str) -> Read:
    """python-dotenv `dotenv_values` (interpolation on) of one version, in its own venv."""
    venv = readers.cache_root() / "reader-matrix" / f"python-dotenv-{version}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"python-dotenv=={version}"], check=True
        )
    code = "import json,sys,dotenv; print(json.dumps(dotenv.dotenv_values(sys.argv[1])))"
    return _subprocess_json([str(python), "-c", code], {"X": "CANARY_X", "HOME": "/canary"})


def _subprocess_json(argv: list[str], env: dict[str, str] | None = None) -> Read:
    def read(path: Path) -> dict[str, str] | None:
        proc = subprocess.run(
            [*argv, str(path)],
            capture_output=True,
            env={"PATH": "/usr/bin:/bin", **(env or {})},
            timeout=120,
            check=False,
        )
        if proc.returncode != 0:
            return None
        out = json.loads(proc.stdout or "{}")
        if not isinstance(out, dict):  # PHP encodes an empty array as []
            return {}
        return {k: "" if v is None else str(v) for k, v in out.items()}

    return read


_RUBY = (
    "require 'dotenv'; require 'json';"
    "print JSON.generate(Dotenv::Environment.new(ARGV[0], true).to_h)"
)
_PHP = (
    "require '/usr/share/php/Dotenv/autoload.php';"
    "$d = Dotenv\\Dotenv::createArrayBacked(dirname($argv[1]), basename($argv[1]));"
    "echo json_encode($d->load());"
)
_COMPOSE_V1 = (
    "import json,sys; from compose.config.environment import env_vars_from_file;"
    "print(json.dumps(env_vars_from_file(sys.argv[1])))"
)


def _go(stack: contextlib.ExitStack, name: str) -> Read:
    read = stack.enter_context(readers.go_reader(name))
    return lambda path: _env_of(read(path))


@contextlib.contextmanager
def all_readers(core: bool) -> Iterator[dict[str, Read]]:
    """Name → reader, for every reader that can be had here (core: the always-present ones)."""
    from dotenv import dotenv_values

    def current(path: Path) -> dict[str, str] | None:
        return {k: v or "" for k, v in dotenv_values(path).items()}

    with contextlib.ExitStack() as stack:
        lib = readers.systemd_library()
        node = stack.enter_context(readers.node_reader())
        found: dict[str, Read] = {
            "compose-go (Compose v2)": _go(stack, "composeparse"),
            "python-dotenv 1.2.4": current,
            "bash": _shell("bash"),
            "dash": _shell("dash"),
            "docker/cli kvfile": _go(stack, "kvfileparse"),
            "systemd 252 load_env_file": lambda p: _env_of(readers.systemd_read(lib, p)),
            "npm dotenv 17.4.2": lambda p: node(p).get("dotenv"),
            f"Node {_node_version()} util.parseEnv": lambda p: node(p).get("parseEnv"),
        }
        if not core:
            extra: dict[str, Callable[[], Read]] = {
                "python-dotenv 1.2.2": lambda: _python_dotenv("1.2.2"),
                "python-dotenv 0.21.1": lambda: _python_dotenv("0.21.1"),
                "godotenv 1.5.1": lambda: _go(stack, "godotenvparse"),
                "docker-compose 1.29.2 (Compose v1)": lambda: _debian(
                    "docker-compose", ["/usr/bin/python3", "-c", _COMPOSE_V1]
                ),
                "ruby-dotenv 2.4.0": lambda: _debian("ruby-dotenv", ["ruby", "-e", _RUBY]),
                "phpdotenv (Debian)": lambda: _debian(
                    "php-vlucas-phpdotenv php-cli", ["php", "-r", _PHP, "--"]
                ),
            }
            for name, make in extra.items():
                try:
                    found[name] = make()
                except (OSError, subprocess.CalledProcessError, readers.ReaderMissing) as exc:
                    print(f"left out {name}: {exc}", file=sys.stderr)
        yield found


def _node_version() -> str:
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip().lstrip("v").split(".")[0] or "?"


def _debian(packages: str, argv: list[str]) -> Read:
    """A reader from Debian packages, installed with apt-get when missing (as root)."""
    status = subprocess.run(["dpkg", "-s", *packages.split()], capture_output=True, check=False)
    if status.returncode != 0:
        if os.geteuid() != 0:
            raise readers.ReaderMissing(f"apt-get install {packages}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages.split()],
            check=True,
            env=env,
            capture_output=True,
        )
    return _subprocess_json(argv, {"X": "CANARY_X", "HOME": "/canary"})


# --- the matrix ----------------------------------------------------------------------------


def _wrong(read: Read, path: Path, carried: dict[str, str], fmt: str) -> list[str]:
    """Keys the reader does not get back exactly. When it fails on the whole file, each
    value is read alone, so that one value it cannot take does not hide the others."""
    got = read(path)
    if got is not None:
        return [k for k, v in carried.items() if got.get(k) != v]
    wrong = []
    for key, value in carried.items():
        path.write_bytes(envfile.render({key: value}, fmt))
        alone = read(path)
        if alone is None or alone.get(key) != value:
            wrong.append(key)
    path.write_bytes(envfile.render(carried, fmt))
    return wrong


def measure(
    core: bool = False, detail: str | None = None
) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """(values refused per format, reader → format → cell)."""
    names = keys()
    values = dict(zip(names, CORPUS, strict=True))
    secrets = {k: Entry(k, v, "corpus", i + 1) for i, (k, v) in enumerate(values.items())}
    refused: dict[str, int] = {}
    files: dict[str, tuple[Path, dict[str, str]]] = {}
    work = Path(tempfile.mkdtemp(prefix="reader-matrix-"))
    try:
        for fmt in FORMATS:
            problems = envfile.render_problems(secrets, fmt)
            bad = {p.key for p in problems}
            carried = {k: v for k, v in values.items() if k not in bad}
            refused[fmt] = len(bad)
            directory = work / fmt
            directory.mkdir()
            path = directory / ".env"
            path.write_bytes(envfile.render(carried, fmt))
            files[fmt] = (path, carried)
        table: dict[str, dict[str, str]] = {}
        with all_readers(core) as found:
            for reader, read in found.items():
                row = table.setdefault(reader, {})
                for fmt, (path, carried) in files.items():
                    wrong = _wrong(read, path, carried, fmt)
                    if detail and detail in reader and wrong:
                        shown = ", ".join(repr(values[k]) for k in wrong)
                        print(f"{reader} / {fmt}: {shown}", file=sys.stderr)
                    row[fmt] = "exact" if not wrong else f"{len(wrong)} wrong"
        return refused, table
    finally:
        shutil.rmtree(work, ignore_errors=True)


def markdown(refused: dict[str, int], table: dict[str, dict[str, str]]) -> str:
    head = "| reader | " + " | ".join(f"`{f}`" for f in FORMATS) + " |"
    rule = "| --- |" + " --- |" * len(FORMATS)
    lines = [head, rule]
    lines.append(
        "| *refused by the format* | " + " | ".join(str(refused[f]) for f in FORMATS) + " |"
    )
    for reader, row in table.items():
        cells = [f"**{row[f]}**" if row[f] == "exact" else row[f] for f in FORMATS]
        lines.append(f"| {reader} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rows(text: str) -> dict[str, str]:
    """Reader name → its table line, from docs/formats.md's matrix (for the consistency test)."""
    section = text.split(MARK_START, 1)[1].split(MARK_END, 1)[0]
    out = {}
    for line in section.splitlines():
        m = re.match(r"\| ([^|]+?) \|", line)
        if m and not line.startswith("| ---"):
            out[m.group(1)] = line
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--readme", action="store_true", help="rewrite the table in docs/formats.md"
    )
    parser.add_argument("--core", action="store_true", help="only the always-present readers")
    parser.add_argument("--detail", metavar="READER", help="print the values READER changes")
    args = parser.parse_args()
    refused, table = measure(core=args.core, detail=args.detail)
    text = markdown(refused, table)
    sys.stdout.write(text)
    if args.readme:
        readme = REPO / "docs" / "formats.md"
        before, rest = readme.read_text().split(MARK_START, 1)
        _, after = rest.split(MARK_END, 1)
        readme.write_text(f"{before}{MARK_START}\n{text}{MARK_END}{after}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
