"""Published example env files of self-hosted projects (tests/fixtures/realworld, see its
SOURCES): each encrypts with the real sops, validates (or is refused only for a documented
class), and deploys in `compose` and `dotenv` so that compose-go and python-dotenv (default
settings) read the deployed file exactly as they read the original."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dotenv import dotenv_values

from sops_deploy.deploy import rollout as deploy
from sops_deploy.envfile import KEY_RE
from sops_deploy.errors import ValidationError
from sops_deploy.inputs.settings import Settings
from sops_deploy.sops import runner as sops
from tests import readers
from tests.support import AgeIdentity, sops_encrypt

CORPUS = Path(__file__).parent / "fixtures" / "realworld"
FILES = sorted(p.name for p in CORPUS.iterdir() if p.name != "SOURCES")
# The refusals the docs list, by file: a key that is not a name (`invalid-key`), a file of
# comments only (`empty-source`, which --allow-empty allows).
NEXTCLOUD_DB = "nextcloud-docker-with-nginx-proxy-postgres-apache-db.env"
REFUSED = {
    NEXTCLOUD_DB: {("pm.max_children", "invalid-key")},
    "paperless-ngx-docker-compose-docker-compose.env": {(None, "empty-source")},
}


def test_the_corpus_is_large_enough_and_attributed() -> None:
    """At least 15 files, each listed in SOURCES with repository, path, commit, licence."""
    assert len(FILES) >= 15
    rows = [
        line.split(" | ")
        for line in (CORPUS / "SOURCES").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert sorted(r[0] for r in rows) == FILES
    for _name, repo, path, commit, licence in rows:
        assert "/" in repo
        assert path
        assert len(commit) == 40
        assert licence.split()[0] in {"MIT", "AGPL-3.0", "GPL-3.0", "BSD-3-Clause", "Apache-2.0"}


@pytest.fixture(scope="module")
def compose_go() -> Iterator[readers.Reader]:
    with readers.go_reader("composeparse") as read:
        yield read


def _encrypted(sops_bin: str, age: AgeIdentity, data: bytes, tmp: Path) -> sops.EncryptedFile:
    """The file encrypted by the real sops: its dotenv store when it takes the file, else
    the binary store."""
    try:
        out, store = sops_encrypt(sops_bin, data, [age.public]), "dotenv"
    except AssertionError:
        out, store = sops_encrypt(sops_bin, data, [age.public], fmt="binary"), "binary"
    path = tmp / f"secrets.{store}.encrypted"
    path.write_bytes(out)
    enc = sops.inspect(str(path))
    assert enc.stored_format == store
    return enc


@pytest.mark.parametrize("name", FILES)
def test_published_file_deploys_as_its_readers_read_it(
    name: str,
    sops_bin: str,
    age_id: AgeIdentity,
    tmp_path: Path,
    compose_go: readers.Reader,
) -> None:
    original = CORPUS / name
    enc = _encrypted(sops_bin, age_id, original.read_bytes(), tmp_path)
    plaintext = sops.decrypt(sops_bin, enc, sops.AgeKeySource(file=str(age_id.path)))
    for fmt in ("compose", "dotenv"):
        settings = Settings(command="validate", files=(enc.path,), format=fmt)
        try:
            plan = deploy.build_plan(settings, [(enc, plaintext)], lambda _: None)
        except ValidationError as exc:
            found = {(p.key, p.rule) for p in exc.problems if p.severity == "error"}
            assert found == REFUSED.get(name), f"{fmt}: {found}"
            assert all(k is None or not KEY_RE.match(k) for k, _ in found)
            continue
        assert name not in REFUSED
        deployed = tmp_path / f"deployed.{fmt}"
        deployed.write_bytes(plan.content)
        if fmt == "compose":
            want = compose_go(original)
            assert "error" not in want
            assert compose_go(deployed) == want
        else:
            assert dotenv_values(deployed) == dotenv_values(original)


def test_a_refused_file_deploys_once_its_documented_problem_is_fixed(
    sops_bin: str, age_id: AgeIdentity, tmp_path: Path, compose_go: readers.Reader
) -> None:
    """The nearest valid input: Nextcloud's db.env without its php-fpm key deploys; its
    `NEXTCLOUD_TRUSTED_DOMAINS=  # separate ...` line, which Compose reads as the text
    `# separate ...` and python-dotenv as empty, is deployed empty with a warning naming
    the key (`comment-or-value`); every other key reads as Compose reads it."""
    original = CORPUS / NEXTCLOUD_DB
    fixed = tmp_path / "db.env"
    lines = original.read_text().splitlines(True)
    fixed.write_text("".join(ln for ln in lines if "." not in ln.split("=")[0]))
    enc = _encrypted(sops_bin, age_id, fixed.read_bytes(), tmp_path)
    plaintext = sops.decrypt(sops_bin, enc, sops.AgeKeySource(file=str(age_id.path)))
    settings = Settings(command="validate", files=(enc.path,), format="compose")
    plan = deploy.build_plan(settings, [(enc, plaintext)], lambda _: None)
    assert [(p.key, p.rule) for p in plan.warnings if p.rule == "comment-or-value"] == [
        ("NEXTCLOUD_TRUSTED_DOMAINS", "comment-or-value")
    ]
    deployed = tmp_path / "deployed.env"
    deployed.write_bytes(plan.content)
    want = compose_go(fixed)["env"]
    assert want["NEXTCLOUD_TRUSTED_DOMAINS"] == "# separate each one by space"
    want["NEXTCLOUD_TRUSTED_DOMAINS"] = dotenv_values(fixed)["NEXTCLOUD_TRUSTED_DOMAINS"]
    assert compose_go(deployed)["env"] == want


def test_the_measuring_script_runs_here() -> None:
    """scripts/fidelity_measure.py (the issue's before/after counts) runs and, after issue
    23, finds nothing wrong in any format."""
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.fidelity_measure"],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    rows = [line.split("|") for line in proc.stdout.splitlines() if line.startswith("| `")]
    assert len(rows) == 16
    assert all(row[4].strip() == "0" for row in rows), proc.stdout
