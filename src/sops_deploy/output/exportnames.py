"""Which names `export-env: '*'` may hand to later steps through $GITHUB_ENV.

A later step's environment is code: `LD_PRELOAD`, `BASH_ENV`, `NODE_OPTIONS`, `PATH` or
`GIT_SSH_COMMAND` set from the encrypted file change what every following program runs,
and `GITHUB_*`/`RUNNER_*` change how the runner itself behaves. `*` therefore exports
such a name only when export-env also lists it by name (`export-env: '*,PATH'`): the
wildcard never says yes to them on its own.
"""

from __future__ import annotations

from collections.abc import Iterable

# Exact names (compared upper-cased: the runner's shells on macOS and Windows do not all
# tell case apart) and prefixes that load code, change a shell's or loader's behaviour,
# or steer the runner.
DANGEROUS = frozenset(
    (
        "PATH", "HOME", "SHELL", "ENV", "BASH_ENV", "IFS", "PS4", "SHELLOPTS", "BASHOPTS",
        "CDPATH", "GLOBIGNORE", "PROMPT_COMMAND", "TMPDIR", "NODE_OPTIONS", "NODE_PATH",
        "RUBYOPT", "RUBYLIB", "PERLLIB", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
        "JDK_JAVA_OPTIONS", "DOTNET_STARTUP_HOOKS", "CI",
    )
)  # fmt: skip
DANGEROUS_PREFIXES = (
    "LD_", "DYLD_", "GITHUB_", "RUNNER_", "ACTIONS_", "PYTHON", "PERL5", "GIT_", "BASH_FUNC_",
    "NPM_CONFIG_", "GCONV_", "MALLOC_",
)  # fmt: skip


def is_dangerous(name: str) -> bool:
    """Whether exporting `name` to later steps changes what they run or how the runner works."""
    upper = name.upper()
    return upper in DANGEROUS or upper.startswith(DANGEROUS_PREFIXES)


def refused(wanted: Iterable[str], listed: Iterable[str]) -> list[str]:
    """The dangerous names among `wanted` that `listed` (export-env's entries) does not name."""
    named = set(listed)
    return [name for name in wanted if is_dangerous(name) and name not in named]
