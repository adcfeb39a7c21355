"""The README documents the action exactly as action.yml defines it, action.yml keeps the
rules that make it safe (inputs through env: only, everything described), every link in
the code, the README and docs/ resolves, and the release workflow moves v1 correctly."""

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


def test_every_docs_link_in_the_code_has_its_entry() -> None:
    """Each `docs/PAGE.md#anchor` an error hint points at exists on that page (FAQ entries
    are `<a id="faq-…">`), and no hint still points at an anchor of the README."""
    cited = {
        (page, anchor)
        for path in (REPO / "src").rglob("*.py")
        for page, anchor in re.findall(r"docs/([a-z-]+\.md)#([a-z0-9-]+)", path.read_text())
    }
    assert len({a for _, a in cited if a.startswith("faq-")}) >= 8
    missing = sorted((p, a) for p, a in cited if a not in anchors(REPO / "docs" / p))
    assert missing == []
    stale = [
        str(path.relative_to(REPO))
        for path in (REPO / "src").rglob("*.py")
        if "README#" in path.read_text()
    ]
    assert stale == []


# --- every relative link and anchor of the README and docs/ resolves ---------------------

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _outside_fences(text: str) -> list[str]:
    """The lines of a Markdown text that are not inside a fenced code block."""
    out, fence = [], ""
    for line in text.splitlines():
        if m := re.match(r"^\s*(```+|~~~+)", line):
            if not fence:
                fence = m.group(1)[:3]
            elif m.group(1).startswith(fence):
                fence = ""
            continue
        if not fence:
            out.append(line)
    return out


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text lower-cased, every character
    that is not a letter, digit, space, `-` or `_` dropped, spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor of a page: its headings' slugs (a repeated one gets -1, -2, …) and
    its explicit `<a id>` / `<a name>` targets."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _outside_fences(page.read_text()):
        if m := re.match(r"^#{1,6} (.*?)\s*#*\s*$", line):
            base = slug(m.group(1))
            found.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
        found.update(re.findall(r'<a (?:id|name)="([^"]+)"', line))
    return found


def links(page: Path) -> list[str]:
    """The targets of a page's inline links and images, code spans and blocks left out."""
    found = []
    for line in _outside_fences(page.read_text()):
        prose = re.sub(r"`[^`]*`", "", line)
        found += re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose)
    return found


def test_the_slug_is_githubs() -> None:
    """The link checker's own rule, on headings whose anchors GitHub is known to make."""
    assert slug("Your SSH setup: ssh-agent, ~/.ssh/config, one secret in CI") == (
        "your-ssh-setup-ssh-agent-sshconfig-one-secret-in-ci"
    )
    assert slug("One host, several services: `targets:`") == "one-host-several-services-targets"
    assert slug("Formats: what each guarantees and refuses") == (
        "formats-what-each-guarantees-and-refuses"
    )


def broken_links(page: Path, root: Path = REPO) -> list[str]:
    """The relative links of `page` that name no file under `root`, or an `#anchor` that
    the page they name (itself, when no path is given) does not have."""
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        inside = dest.exists() and root.resolve() in (dest, *dest.parents)
        if not inside or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    """Each relative link of README.md and docs/*.md names a file of the repository, and
    each `#anchor` (on the page itself or on another page) exists there."""
    assert broken_links(page) == []


def test_the_link_checker_finds_a_broken_link(tmp_path: Path) -> None:
    """The checker itself: a missing page, a missing anchor (here or there) and a link out
    of the repository are broken; a heading's slug, an `<a id>`, code and URLs are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "faq.md").write_text('## FAQ\n\n<a id="faq-one"></a>\n**One.**\n')
    page = tmp_path / "README.md"
    page.write_text(
        "# Top: `the` start\n\n[a](docs/faq.md#faq-one) [b](docs/faq.md#faq) [c](#top-the-start)"
        " [d](https://example.com/x#y) `[e](nowhere.md)`\n\n```\n[f](nowhere.md)\n```\n"
        "[g](docs/gone.md) [h](docs/faq.md#faq-two) [i](#nope) [j](../outside.md)\n"
    )
    (tmp_path.parent / "outside.md").write_text("# outside\n")
    assert broken_links(page, tmp_path) == [
        "docs/gone.md",
        "docs/faq.md#faq-two",
        "#nope",
        "../outside.md",
    ]
    assert sum(t.startswith("docs/") for t in links(REPO / "README.md")) >= 10


def test_the_front_page_is_short() -> None:
    """README.md is a front page (at most 15,000 characters); the reference is in docs/."""
    assert len(README) <= 15_000, len(README)


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
