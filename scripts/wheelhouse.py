"""Download the action's hash-locked wheels for every supported Python into one directory.

`pip download --python-version X` picks wheels for Python X but evaluates environment
markers against the Python running pip, so a universal lock (pycparser==3.11 for 3.10,
3.12 for 3.11+) cannot be downloaded for 3.10 as it is. This evaluates each requirement's
marker for the target Python first, then lets pip download (and hash-check) what remains,
without the marker.

    python scripts/wheelhouse.py DEST 3.10 3.11 3.12 3.13 -- requirements/action.txt ...
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.requirements import Requirement


def requirements_for(lock: str, python: str) -> str:
    """The lock's entries (with their hashes) whose marker holds on `python` (e.g. "3.10")."""
    env = {"python_version": python, "python_full_version": f"{python}.0"}
    kept: list[str] = []
    for entry in re.split(r"\n(?=\S)", lock):
        head = entry.split("\\", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        marker = Requirement(head).marker
        if marker is None or marker.evaluate(env):
            # pip would evaluate the marker again, for its own Python: drop it
            kept.append(entry.strip().replace(head, head.split(";", 1)[0].strip() + " ", 1))
    return "\n".join(kept) + "\n"


def main(argv: list[str]) -> int:
    dest, rest = argv[0], argv[1:]
    split = rest.index("--")
    pythons, locks = rest[:split], rest[split + 1 :]
    for python in pythons:
        with tempfile.TemporaryDirectory() as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text(
                "".join(requirements_for(Path(lock).read_text(), python) for lock in locks)
            )
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--require-hashes",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--python-version",
                    python,
                    "-r",
                    str(req),
                    "-d",
                    dest,
                ],
                check=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
