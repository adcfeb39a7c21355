"""The README documents the action exactly as action.yml defines it, and action.yml keeps
the rules that make it safe (inputs through env: only, everything described)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO

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
