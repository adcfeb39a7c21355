"""Reading a scope from GitHub, applying a plan, and writing the new state.

Reads: the secrets list, the variables list, and the state variable. Writes only what
the plan says, then (if anything was written) reads the secrets list again to record
GitHub's own `updated_at` of each, and writes the state variable only when its content
changed — so a rerun with nothing to do makes no request that writes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sops_deploy.errors import GitHubError
from sops_deploy.github import plan as planning
from sops_deploy.github.client import Api, Remote, Scope
from sops_deploy.github.names import STATE_PREFIX
from sops_deploy.github.seal import seal
from sops_deploy.github.state import State, Tagger, new_salt


def state_location(scope: Scope) -> tuple[str, str]:
    """(variables path, variable name) of the scope's state."""
    if scope.kind == "dependabot":
        return f"/repos/{scope.repo}/actions/variables", STATE_PREFIX + "_DEPENDABOT"
    assert scope.variables_path is not None
    return scope.variables_path, STATE_PREFIX


@dataclass(frozen=True)
class Observed:
    """What GitHub holds for a scope, and the state the tool left there."""

    secrets: dict[str, Remote]
    variables: dict[str, Remote]
    state: State
    state_exists: bool


def observe(api: Api) -> Observed:
    secrets = api.secrets()
    path, name = state_location(api.scope)
    variables = api.variables() if api.scope.variables_path else {}
    holder = variables if path == api.scope.variables_path else api.variables(path)
    state_var = holder.get(name)
    variables = {k: v for k, v in variables.items() if not k.startswith(STATE_PREFIX)}
    return Observed(
        secrets, variables, State.parse(state_var.value if state_var else None), bool(state_var)
    )


def tagger_for(identity: str, observed: Observed, scope: Scope) -> tuple[Tagger, str]:
    """The tagger (and its salt): the state's salt when the same identity keyed it."""
    from sops_deploy.sops import agekey

    state = observed.state
    same = state.kid == agekey.public_key(identity) and state.salt and not state.unreadable
    salt = state.salt if same else new_salt()
    scope_id = f"{scope.kind}:{scope.repo.lower()}:{scope.environment or ''}"
    tagger = Tagger(identity, salt, scope_id)
    state.proven = tagger.verify(state)
    return tagger, salt


def apply(
    api: Api,
    facts: planning.Facts,
    ops: list[planning.Op],
    tagger: Tagger,
    salt: str,
    observed: Observed,
    progress: Callable[[str], None],
) -> None:
    """Do the writes of `ops`, then record the new state (only if it changed)."""
    by_name = {w.name: w for w in facts.wanted}
    key: tuple[str, str] | None = None
    for op in ops:
        if not op.writes:
            continue
        if op.kind == planning.SECRET and op.action in ("create", "update"):
            if key is None:
                key = api.public_key()
            api.put_secret(op.name, seal(key[1], by_name[op.name].value), key[0])
        elif op.kind == planning.SECRET:
            api.delete_secret(op.name)
        elif op.action == "delete":
            api.delete_variable(op.name)
        else:
            api.set_variable(op.name, by_name[op.name].value, exists=op.name in observed.variables)
        progress(f"{op.action}d {op.kind} {op.name}")
    updated = {n: r.updated_at for n, r in observed.secrets.items()}
    if any(op.writes and op.kind == planning.SECRET for op in ops):
        updated = {n: r.updated_at for n, r in api.secrets().items()}
        missing = [
            op.name
            for op in ops
            if op.kind == planning.SECRET and op.action in ("create", "update")
            if op.name not in updated
        ]
        if missing:
            raise GitHubError(
                f"GitHub does not list the secret(s) just written: {', '.join(missing)}",
                "rerun github-sync; if it persists, check the repository's secrets page",
            )
    new = planning.next_state(facts, ops, tagger.tag, updated, salt)
    same = new.content() == observed.state.content()
    if same and observed.state_exists and observed.state.proven:
        return
    new.synced_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path, name = state_location(api.scope)
    api.set_variable(name, new.render(tagger.seal(new)), exists=observed.state_exists, path=path)
