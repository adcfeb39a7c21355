"""The README documents the action exactly as action.yml defines it, action.yml keeps the
rules that make it safe (inputs through env: only, everything described), every FAQ link
in the code has its README entry, and the release workflow moves v1 correctly."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import REPO

ACTION: dict[str, Any] = yaml.safe_load((REPO / "action.yml").read_text())
README = (REPO / "README.md").read_text()


def section(text: str, heading: str) -> str:
    """The body under `heading` up to the next heading of the same or a higher level."""
    level = heading.split(" ", 1)[0]
    start = text.index(heading + "\n") + len(heading) + 1
    stop = re.compile(rf"^#{{1,{len(level)}}} ", re.M).search(text, start)
    return text[start : stop.start() if stop else len(text)]


def table(text: str) -> list[list[str]]:
    """Rows of the first Markdown table in `text`, cells stripped and unescaped."""
    rows = [line for line in text.splitlines() if line.startswith("|")]
    cells = [re.split(r"(?<!\\)\|", row.strip())[1:-1] for row in rows[2:]]
    return [[c.strip().replace("\\|", "|") for c in row] for row in cells]


def code(cell: str) -> str:
    return cell.strip("`")


ACTION_DOC = section(README, "## GitHub Action")


def test_readme_inputs_table_equals_action_inputs() -> None:
    """Every input is in the README with the same description and default, in order."""
    rows = table(section(ACTION_DOC, "### Inputs"))
    documented = [(code(name), desc, "" if d == "(empty)" else code(d)) for name, desc, d in rows]
    expected = [
        (name, spec["description"], str(spec["default"])) for name, spec in ACTION["inputs"].items()
    ]
    assert documented == expected


def test_readme_outputs_table_equals_action_outputs() -> None:
    """Every output is in the README with the same description, in order."""
    rows = table(section(ACTION_DOC, "### Outputs"))
    assert [(code(n), d) for n, d in rows] == [
        (name, spec["description"]) for name, spec in ACTION["outputs"].items()
    ]


def test_readme_workflow_uses_only_real_inputs_and_outputs() -> None:
    """The copy-paste workflow parses and names only inputs and outputs action.yml has."""
    block = re.search(r"```yaml\n(.*?)```", ACTION_DOC, re.S)
    assert block, "no yaml block in the GitHub Action section"
    workflow = yaml.safe_load(block.group(1))
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    ours = [s for s in steps if str(s.get("uses", "")).startswith("OWNER/sops-deploy@")]
    assert len(ours) == 1
    assert set(ours[0]["with"]) <= set(ACTION["inputs"])
    used = set(re.findall(r"steps\.deploy\.outputs\.([a-z-]+)", block.group(1)))
    assert used
    assert used <= set(ACTION["outputs"])


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(REPO / "action.yml", id="action"),
        *[
            pytest.param(p, id=p.name)
            for p in sorted((REPO / ".github" / "workflows").glob("*.yml"))
            + sorted((REPO / "tests" / "workflows").glob("*.yml"))
        ],
    ],
)
def test_no_expression_inside_run_scripts(path: Path) -> None:
    """No `${{ ... }}` is pasted into a run: script; values arrive through env: only."""
    doc = yaml.safe_load(path.read_text())
    if "runs" in doc:
        steps = doc["runs"]["steps"]
    else:
        steps = [s for job in doc["jobs"].values() for s in job.get("steps", [])]
    assert steps
    runs = [s["run"] for s in steps if "run" in s]
    for script in runs:
        assert "${{" not in script


def test_every_input_and_output_is_described_with_a_default() -> None:
    """action.yml describes each input (with a default) and each output."""
    for name, spec in ACTION["inputs"].items():
        assert spec.get("description"), name
        assert "default" in spec, name
    for name, spec in ACTION["outputs"].items():
        assert spec.get("description"), name
        assert spec["value"] == f"${{{{ steps.run.outputs.{name} }}}}"
    assert ACTION["branding"]["icon"]
    assert ACTION["runs"]["using"] == "composite"


def test_every_faq_link_in_the_code_has_its_readme_entry() -> None:
    """Each `README#faq-…` an error hint points at exists as an anchor in the README."""
    import re

    readme = (REPO / "README.md").read_text()
    anchors = set(re.findall(r'<a id="(faq-[a-z0-9-]+)"></a>', readme))
    cited = {
        m
        for path in (REPO / "src").rglob("*.py")
        for m in re.findall(r"README#(faq-[a-z0-9-]+)", path.read_text())
    }
    assert len(cited) >= 8
    assert cited <= anchors, f"missing FAQ entries: {sorted(cited - anchors)}"


def test_release_workflow_moves_v1_with_plain_git_and_minimal_permissions() -> None:
    """The release workflow runs no third-party action and may only write contents."""
    workflow = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    assert workflow["permissions"] == {}
    job = workflow["jobs"]["move-major-tag"]
    assert job["permissions"] == {"contents": "write"}
    assert not [s for s in job["steps"] if "uses" in s]
    script = job["steps"][0]["run"]
    assert "git tag -f v1" in script
    assert "${{" not in script, "inputs reach the script through env: only"
    dependabot = yaml.safe_load((REPO / ".github/dependabot.yml").read_text())
    assert {u["package-ecosystem"] for u in dependabot["updates"]} == {"pip", "github-actions"}


@pytest.mark.parametrize(
    ("release", "v1_at"),
    [
        pytest.param("v1.1.0", "v1.1.0", id="newest-moves-v1"),
        pytest.param("v1.0.1", "v1.0.0", id="backport-leaves-v1"),
        pytest.param("v2.0.0", "v1.0.0", id="other-major-leaves-v1"),
    ],
)
def test_release_script_moves_v1_only_to_the_newest_v1_release(
    tmp_path: Path, release: str, v1_at: str
) -> None:
    """The release step's own bash, run against a local bare repository, moves v1 correctly."""
    origin = tmp_path / "project.git"
    work = tmp_path / "work"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    commits = {}
    for tag in ("v1.0.0", "v1.0.1", "v1.1.0", "v2.0.0"):
        subprocess.run(
            [*git, "-C", str(work), "commit", "-q", "--allow-empty", "-m", tag], check=True
        )
        subprocess.run([*git, "-C", str(work), "tag", tag], check=True)
        commits[tag] = subprocess.run(
            ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    subprocess.run(["git", "-C", str(work), "tag", "v1", "v1.0.0"], check=True)
    subprocess.run(["git", "-C", str(work), "push", "-q", str(origin), "--tags"], check=True)
    workflow = yaml.safe_load((REPO / ".github/workflows/release.yml").read_text())
    script = workflow["jobs"]["move-major-tag"]["steps"][0]["run"]
    runner = tmp_path / "runner"
    runner.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "TAG": release,
        "REPO": "project",
        "SERVER": f"file://{tmp_path}",
        "TOKEN": "test-token-not-a-secret",
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        "GIT_CONFIG_GLOBAL": "/dev/null",
    }
    proc = subprocess.run(
        ["bash", "-e", "-c", script], cwd=runner, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    v1 = subprocess.run(
        ["git", "-C", str(origin), "rev-parse", "v1^{commit}"], capture_output=True, text=True
    ).stdout.strip()
    assert v1 == commits[v1_at]


def test_architecture_doc_names_every_module() -> None:
    """docs/architecture.md's module map names every module and package of src/sops_deploy."""
    doc = (REPO / "docs" / "architecture.md").read_text()
    package = REPO / "src" / "sops_deploy"
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.name in ("__init__.py", "__main__.py") or rel.parts[0] == "templates":
            continue
        top = rel.parts[0]
        named = (
            f"`{rel.name}`" in doc
            if len(rel.parts) == 1
            else f"`{top}/" in doc and (top != "remote" or rel.stem in doc)
        )
        if not named:
            missing.append(str(rel))
    assert missing == []
