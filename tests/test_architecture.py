"""The package keeps its shape (DESIGN.md, docs/architecture.md): at most eight modules at
the top, the rest in packages by concern; no import cycles; modules under ~400 lines and
functions under ~80; the environment read only at the front door (`cli.py`). Read from the
source with `ast`, so a function-level import counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import REPO

PACKAGE = REPO / "src" / "sops_deploy"
MAX_LINES = 400
MAX_FUNCTION_LINES = 80
MAX_TOP_LEVEL = 8


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name: str) -> set[str]:
    """Every sops_deploy module `name` imports, at any level of its code."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:  # `from pkg import mod` depends on mod, not on pkg
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in MODULES else base)
    return {m for m in found if m in MODULES and m != name}


def cycle_from(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in `graph` (as a path that returns to its start), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The checker itself: a → b → c → a is found, a tree is not."""
    assert cycle_from({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle_from({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_no_module_imports_one_that_imports_it_back() -> None:
    """The import graph of src/sops_deploy (top-level and function-level imports) has no cycle.

    `from package import module` counts as a dependency on the module: Python's implicit
    import of the parent package is not a design dependency."""
    graph = {name: imports_of(name) for name in MODULES}
    assert graph["sops_deploy.cli"], "the walker found no imports at all"
    assert cycle_from(graph) is None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name: str) -> None:
    """Every module stays under ~400 lines; past that, split by concern."""
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def functions() -> dict[str, int]:
    """Every function and method of the package (`module.name`) → its length in lines."""
    return {
        f"{name}.{node.name}": node.end_lineno - node.lineno + 1
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno
    }


def test_no_function_is_longer_than_eighty_lines() -> None:
    """A function past ~80 lines does several things: split it by meaning, not by size."""
    found = functions()
    assert found["sops_deploy.cli.main"] > 1, "the walker found no functions"
    long = {f: n for f, n in found.items() if n > MAX_FUNCTION_LINES}
    assert long == {}


def test_at_most_eight_modules_at_the_top() -> None:
    """The top of src/sops_deploy holds the front door, the error hierarchy and shared
    constants; everything else lives in a package named for its concern."""
    top = sorted(
        p.name for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")
    )
    assert "cli.py" in top
    assert len(top) <= MAX_TOP_LEVEL, top


def test_every_package_says_what_it_owns() -> None:
    """Each package's __init__.py opens with a docstring naming what it owns."""
    silent = [
        name
        for name, path in MODULES.items()
        if path.name == "__init__.py"
        and name != "sops_deploy"
        and not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert silent == []


def calls_of(function: str) -> set[str]:
    """The modules whose code calls `<module alias>.function(...)` or `function(...)`."""
    return {
        name
        for name, path in MODULES.items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == function)
            or (isinstance(node.func, ast.Name) and node.func.id == function)
        )
    }


def test_one_path_from_encrypted_files_to_secrets() -> None:
    """Deploy, check, diff, validate, github-sync, doctor and the head start share one
    path: `plan.decrypt.decrypt_all` reads every source (sops over the files, in
    `stores.source.read_all`, which also reads vault:// and aws-sm://; doctor decrypts
    file by file to name the one that fails; init and rotate decrypt to re-encrypt), and
    only `plan.build.read_secrets` parses, merges and schema-checks what it returns
    (github-sync, vault-sync and aws-sync through `github.command.load_checked`)."""
    assert calls_of("read_all") == {"sops_deploy.plan.decrypt"}
    assert calls_of("decrypt") - {"sops_deploy.sops.runner"} == {
        "sops_deploy.stores.source",
        "sops_deploy.maintain.doctor",
        "sops_deploy.maintain.init_repo",
        "sops_deploy.maintain.rotation",
    }
    assert calls_of("decrypt_all") == {
        "sops_deploy.commands",
        "sops_deploy.github.command",
        "sops_deploy.plan.background",
    }
    for step in ("merge", "parse_plaintext"):
        assert calls_of(step) == {"sops_deploy.plan.build"}, step
    assert calls_of("read_secrets") == {"sops_deploy.plan.build", "sops_deploy.github.command"}
    assert calls_of("build_plan") == {"sops_deploy.commands", "sops_deploy.maintain.doctor"}


def test_only_the_front_door_reads_the_environment() -> None:
    """`os.environ` / `os.getenv` appear in cli.py only: below `cli.main` every input
    arrives resolved, and child processes get an explicit environment."""
    readers = {
        name
        for name, path in MODULES.items()
        if any(
            isinstance(node, ast.Attribute)
            and node.attr in ("environ", "getenv", "environb", "getenvb")
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        )
    }
    assert "sops_deploy.cli" in readers, "the checker no longer sees cli.py's os.environ"
    assert readers == {"sops_deploy.cli"}


def test_tests_bench_and_scripts_share_helpers_without_path_edits() -> None:
    """tests/, bench/ and scripts/ import each other as packages from the repository root:
    no sys.path edits anywhere (the shared helpers live in tests/support.py)."""
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for folder in ("tests", "bench", "scripts", "setup")
        for path in sorted((REPO / folder).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if ("sys.path." + "insert") in line or ("syspath_" + "prepend") in line
    ]
    assert offenders == []


def module_state(source: str) -> list[str]:
    """The names `source` binds at module level to anything but a constant or an import:
    state that one caller could set and another read (a flag, an Event, a dict)."""
    found = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and not isinstance(node.value, ast.Constant):
            found += [ast.unparse(t) for t in node.targets]
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and not isinstance(
            node.value, ast.Constant
        ):
            found.append(ast.unparse(node.target))
    return found


def test_the_state_finder_finds_a_module_level_flag() -> None:
    assert module_state("import threading\nrequested = threading.Event()\n") == ["requested"]
    assert module_state("_state: dict[str, int] = {'signal': 0}\n") == ["_state"]
    assert module_state("LIMIT = 5\ndef f() -> None:\n    x = {}\n") == []


def test_cancellation_is_one_token_passed_down() -> None:
    """A signal sets the run's `interrupt.Cancel` (made by `cli.main`, handed to the
    rollout, carried to every host by its `Connection`); `interrupt.py` holds no state of
    its own, no module keeps a module-level Event, and no module reads anything of
    `interrupt` but its classes and functions (no global `interrupt.requested`)."""
    source = MODULES["sops_deploy.interrupt"].read_text(encoding="utf-8")
    assert module_state(source) == []
    tree = ast.parse(source)
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    assert {"Cancel", "Interrupted"} <= defined
    events, reads = set(), set()
    for name, path in MODULES.items():
        module = ast.parse(path.read_text(encoding="utf-8"))
        for statement in module.body:
            value = statement.value if isinstance(statement, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Call) and ast.unparse(value.func).endswith("Event"):
                events.add(name)
        for node in ast.walk(module):
            if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "interrupt":
                reads.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and node.module == "sops_deploy.interrupt":
                reads.update(alias.name for alias in node.names)
    assert events == set()
    assert "Cancel" in reads, "the checker no longer sees the front door's token"
    assert reads <= defined, reads - defined
