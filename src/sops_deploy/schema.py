"""What the secrets must contain: required keys (and, later, a schema file).

Returns every problem at once, each naming the key and never the value.
"""

from __future__ import annotations

from typing import Protocol

from sops_deploy.envfile import Secrets
from sops_deploy.errors import Problem


class _Wants(Protocol):
    @property
    def required(self) -> tuple[str, ...]: ...

    @property
    def files(self) -> tuple[str, ...]: ...


def check(secrets: Secrets, wants: _Wants) -> list[Problem]:
    """Problems for required keys that are missing or empty."""
    problems: list[Problem] = []
    where = ", ".join(wants.files)
    for key in wants.required:
        entry = secrets.get(key)
        if entry is None:
            problems.append(
                Problem(
                    where,
                    None,
                    key,
                    "required-missing",
                    "a required key is missing",
                    f"add it with `sops edit` (e.g. {key}=...) and commit",
                )
            )
        elif entry.value == "":
            problems.append(
                Problem(
                    entry.file,
                    entry.line,
                    key,
                    "required-empty",
                    "a required key is empty",
                    "give it a value with `sops edit` and commit",
                )
            )
    return problems
