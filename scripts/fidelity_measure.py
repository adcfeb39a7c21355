"""Fidelity counts per format: exact / refused / wrong, on the issue's adversarial lines and
on the published corpus (tests/fixtures/realworld), with the real readers.

Each sample is a dotenv source (the plaintext a sops file decrypts to). Its meaning is what
Docker Compose (compose-go, the real parser) reads from it. For each format the product's
own path runs in-process (`sops_deploy.plan.build_plan`, as `validate`/`deploy` do):

- refused: the plan is refused (exit 4);
- exact: the format's real reader reads every key of the deployed file as Compose reads the
  source (`raw`: the bytes are the source's; `files`: each file holds that value);
- wrong: the plan is accepted and some key reads differently.

An adversarial sample is one line (with the lines it references); a corpus sample is a
whole file. Only public APIs that also exist before issue 23 are used, so the same script
measures an older checkout:

    python -m scripts.fidelity_measure       # this checkout (from the repository root)

and for an older checkout (its package and its tests/readers.py, this corpus):

    git worktree add /tmp/before 62019c2 && cd /tmp/before
    PYTHONPATH=/tmp/before/src:/tmp/before .venv-of-this-repo/bin/python \
        /path/to/this/repo/scripts/fidelity_measure.py
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from sops_deploy.errors import ValidationError

try:  # the package layout of issue 24
    from sops_deploy.inputs.settings import Settings
    from sops_deploy.plan.build import build_plan
    from sops_deploy.sops.runner import EncryptedFile
except ImportError:  # an older checkout: flat modules
    from sops_deploy.config import Settings  # type: ignore[no-redef]

    from sops_deploy.plan import build_plan  # type: ignore[no-redef,attr-defined]
    from sops_deploy.sops import EncryptedFile  # type: ignore[no-redef,attr-defined]
from tests import readers

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "fixtures" / "realworld"
FORMATS = ("compose", "dotenv", "shell", "docker", "systemd", "node", "files", "raw")

MATTERMOST = (
    "POSTGRES_USER=mmuser\nPOSTGRES_PASSWORD=mmuser_password\nPOSTGRES_HOST=postgres\n"
    "POSTGRES_PORT=5432\nPOSTGRES_DB=mattermost\nDOMAIN=mm.example.com\n"
)
ADVERSARIAL = {
    "JWT_PAD": 'JWT_PAD="=lead"\n',
    "EQ_ONLY": 'EQ_ONLY="="\n',
    "X": 'X="==x=="\n',
    "K": "K==bare\n",
    "Auth0ClientSecret": "Auth0ClientSecret=s3cr3tValue\n",
    "AzureAdB2CTenant1": "AzureAdB2CTenant1=contoso\n",
    "S3Bucket2Name": "S3Bucket2Name=my-bucket\n",
    "SAML2_IDP_x509": "SAML2_IDP_x509=null\n",
    "MM_SQLSETTINGS_DATASOURCE": MATTERMOST
    + "MM_SQLSETTINGS_DATASOURCE=postgres://${POSTGRES_USER}:${POSTGRES_PASSWORD}@"
    "${POSTGRES_HOST}:${POSTGRES_PORT}/${POSTGRES_DB}?sslmode=disable&connect_timeout=10\n",
    "MM_SERVICESETTINGS_SITEURL": MATTERMOST + "MM_SERVICESETTINGS_SITEURL=https://${DOMAIN}\n",
    "MAIL_FROM_NAME": 'APP_NAME=Monica\nMAIL_FROM_NAME="${APP_NAME}"\n',
}

Read = Callable[[Path], dict[str, str]]


def _shell(shell: str, path: Path) -> dict[str, str]:
    proc = subprocess.run(
        [shell, "-c", f"set -a; . {path}; exec /usr/bin/env -0"],
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        return {}
    out: dict[str, str] = {}
    for item in proc.stdout.split(b"\0"):
        if item:
            key, _, value = item.decode("utf-8", "replace").partition("=")
            out[key] = value
    return out


@contextlib.contextmanager
def real_readers() -> Iterator[dict[str, Read]]:
    """fmt -> the format's real reader (both shells must agree, both Node readers too)."""
    with (
        readers.go_reader("composeparse") as compose,
        readers.go_reader("kvfileparse") as kvfile,
        readers.node_reader() as node,
    ):
        lib = readers.systemd_library()

        def env(answer: dict[str, Any]) -> dict[str, str]:
            found: dict[str, str] = answer.get("env") or {}
            return found

        def shells(path: Path) -> dict[str, str]:
            bash, dash = _shell("bash", path), _shell("dash", path)
            return {k: v for k, v in bash.items() if dash.get(k) == v}

        def nodes(path: Path) -> dict[str, str]:
            a = node(path)
            return {k: v for k, v in (a.get("dotenv") or {}).items() if a["parseEnv"].get(k) == v}

        yield {
            "compose": lambda p: env(compose(p)),
            "dotenv": lambda p: {k: v or "" for k, v in dotenv_values(p).items()},
            "shell": shells,
            "docker": lambda p: env(kvfile(p)),
            "systemd": lambda p: env(readers.systemd_read(lib, p)),
            "node": nodes,
        }


def classify(source: str, fmt: str, read: dict[str, Read], work: Path) -> str:
    """exact | refused | wrong for one dotenv source deployed in `fmt`."""
    src = work / "source.env"
    src.write_text(source)
    meaning = read["compose"](src)
    enc = EncryptedFile(str(work / "secrets.env.encrypted"), "dotenv", ())
    remote = "/srv/app" if fmt == "files" else "/srv/app/.env"
    settings = Settings(command="validate", files=(enc.path,), format=fmt, remote_path=remote)
    try:
        plan = build_plan(settings, [(enc, source.encode())], lambda _: None)
    except ValidationError:
        return "refused"
    if fmt == "raw":
        return "exact" if plan.content == source.encode() else "wrong"
    if fmt == "files":
        files = plan.targets[0].files
        got = {k: b.decode("utf-8", "replace") for k, b in files.items()}
    else:
        out = work / "deployed.env"
        out.write_bytes(plan.content)
        got = read[fmt](out)
    return "exact" if all(got.get(k) == v for k, v in meaning.items()) else "wrong"


def measure() -> dict[str, dict[str, dict[str, int]]]:
    """{"adversarial"|"corpus": {fmt: {"exact": n, "refused": n, "wrong": n}}}."""
    corpus = {p.name: p.read_text(encoding="utf-8") for p in sorted(CORPUS.iterdir())}
    corpus.pop("SOURCES", None)
    result: dict[str, dict[str, dict[str, int]]] = {}
    with real_readers() as read, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name, samples in (("adversarial", ADVERSARIAL), ("corpus", corpus)):
            table = result.setdefault(name, {})
            for fmt in FORMATS:
                counts = table.setdefault(fmt, {"exact": 0, "refused": 0, "wrong": 0})
                for source in samples.values():
                    counts[classify(source, fmt, read, work)] += 1
    return result


def markdown(result: dict[str, dict[str, dict[str, int]]]) -> str:
    lines = []
    for name, table in result.items():
        n = sum(table["compose"].values())
        lines += [f"{name} ({n} samples): exact / refused / wrong", ""]
        lines += ["| format | exact | refused | wrong |", "| --- | --- | --- | --- |"]
        for fmt, c in table.items():
            lines.append(f"| `{fmt}` | {c['exact']} | {c['refused']} | {c['wrong']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    import sops_deploy

    print(f"sops_deploy from {Path(sops_deploy.__file__).parent}", file=sys.stderr)
    with contextlib.redirect_stderr(io.StringIO()):
        result = measure()
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
