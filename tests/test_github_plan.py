"""The sync plan as data: facts (file, GitHub, state) in, operations out; and the state tags."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sops_deploy.envfile import Entry
from sops_deploy.github import names
from sops_deploy.github.client import Remote
from sops_deploy.github.plan import SECRET, UNPROVEN, VARIABLE, Facts, Op, Wanted, next_state, plan
from sops_deploy.github.state import Owned, State, Tagger, new_salt
from sops_deploy.plan import publicity
from tests.support import AgeIdentity

SRC = "secrets/app.env.encrypted"
KID = "age1current"


def tag(name: str, value: str) -> str:
    """A stand-in tag for plan tests (the real one is tested below)."""
    return f"t({name}={value})"


def facts(
    wanted: dict[str, str] | None = None,
    variables_wanted: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    variables: dict[str, str] | None = None,
    owned: dict[str, tuple[str, str, str]] | None = None,
    owned_vars: dict[str, str] | None = None,
    kid: str = KID,
    prune: bool = False,
    in_file: dict[str, set[str]] | None = None,
    proven: bool = True,
) -> Facts:
    want = [Wanted(n, n, SECRET, v) for n, v in (wanted or {}).items()]
    want += [Wanted(n, n, VARIABLE, v) for n, v in (variables_wanted or {}).items()]
    state = State(
        kid=KID,
        salt="c2FsdA==",
        secrets={n: Owned(by, mac, at) for n, (by, mac, at) in (owned or {}).items()},
        variables={n: Owned(by) for n, by in (owned_vars or {}).items()},
        proven=proven,
    )
    if in_file is None:
        in_file = {SECRET: set(wanted or {}), VARIABLE: set(variables_wanted or {})}
    return Facts(
        tuple(want),
        {k: frozenset(v) for k, v in in_file.items()},
        {n: Remote(n, at) for n, at in (secrets or {}).items()},
        {n: Remote(n, "2025-01-01T00:00:00Z", v) for n, v in (variables or {}).items()},
        state,
        SRC,
        kid,
        prune,
    )


T1, T2 = "2025-01-02T03:04:06Z", "2025-01-02T03:09:00Z"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            facts(wanted={"API_TOKEN": "v1"}),
            [Op("create", SECRET, "API_TOKEN", "missing on GitHub")],
            id="new-secret-is-created",
        ),
        pytest.param(
            facts(
                wanted={"API_TOKEN": "v1"},
                secrets={"API_TOKEN": T1},
                owned={"API_TOKEN": (SRC, tag("API_TOKEN", "v1"), T1)},
            ),
            [Op("unchanged", SECRET, "API_TOKEN")],
            id="same-tag-same-time-is-unchanged",
        ),
        pytest.param(
            facts(
                wanted={"API_TOKEN": "v2"},
                secrets={"API_TOKEN": T1},
                owned={"API_TOKEN": (SRC, tag("API_TOKEN", "v1"), T1)},
            ),
            [Op("update", SECRET, "API_TOKEN", "changed in the file since the last sync")],
            id="changed-value-is-updated",
        ),
        pytest.param(
            facts(
                wanted={"API_TOKEN": "v1"},
                secrets={"API_TOKEN": T2},
                owned={"API_TOKEN": (SRC, tag("API_TOKEN", "v1"), T1)},
            ),
            [Op("update", SECRET, "API_TOKEN", f"edited outside sops-deploy at {T2}")],
            id="outside-edit-is-found-by-updated-at",
        ),
        pytest.param(
            facts(wanted={"API_TOKEN": "v1"}, owned={"API_TOKEN": (SRC, "x", T1)}),
            [Op("create", SECRET, "API_TOKEN", "deleted outside sops-deploy")],
            id="deleted-outside-is-recreated",
        ),
        pytest.param(
            facts(wanted={"API_TOKEN": "v1"}, secrets={"API_TOKEN": T1}),
            [Op("update", SECRET, "API_TOKEN", "not synced by sops-deploy before")],
            id="existing-unowned-secret-is-taken-over",
        ),
        pytest.param(
            facts(
                wanted={"API_TOKEN": "v1"},
                secrets={"API_TOKEN": T1},
                owned={"API_TOKEN": (SRC, tag("API_TOKEN", "v1"), T1)},
                kid="age1other",
            ),
            [Op("update", SECRET, "API_TOKEN", "last synced with another age identity")],
            id="tags-of-another-identity-cannot-be-compared",
        ),
        pytest.param(
            facts(variables_wanted={"PUBLIC_URL": "https://a"}, variables={"PUBLIC_URL": "x"}),
            [Op("update", VARIABLE, "PUBLIC_URL", "value differs on GitHub")],
            id="variable-compared-by-value",
        ),
        pytest.param(
            facts(
                variables_wanted={"PUBLIC_URL": "https://a"}, variables={"PUBLIC_URL": "https://a"}
            ),
            [Op("unchanged", VARIABLE, "PUBLIC_URL")],
            id="equal-variable-is-unchanged",
        ),
        pytest.param(
            facts(secrets={"OLD": T1}, owned={"OLD": (SRC, "x", T1)}),
            [Op("left", SECRET, "OLD", "left the file; --prune deletes it")],
            id="owned-name-gone-from-file-is-left-without-prune",
        ),
        pytest.param(
            facts(secrets={"OLD": T1}, owned={"OLD": (SRC, "x", T1)}, prune=True),
            [Op("delete", SECRET, "OLD", "left the file (created by sops-deploy)")],
            id="owned-name-gone-from-file-is-pruned",
        ),
        pytest.param(
            facts(secrets={"OLD": T1}, owned={"OLD": (SRC, "x", T1)}, prune=True, proven=False),
            [Op("left", SECRET, "OLD", UNPROVEN)],
            id="claim-of-an-unsealed-state-is-not-pruned",
        ),
        pytest.param(
            facts(secrets={"OLD": T2}, owned={"OLD": (SRC, "x", T1)}, prune=True),
            [Op("left", SECRET, "OLD", "written outside sops-deploy since; not pruned")],
            id="secret-written-outside-since-the-sync-is-not-pruned",
        ),
        pytest.param(
            facts(secrets={"THEIRS": T1}, variables={"THEIRS_VAR": "v"}, prune=True),
            [],
            id="prune-never-deletes-what-it-did-not-create",
        ),
        pytest.param(
            facts(secrets={"OLD": T1}, owned={"OLD": ("secrets/other.env", "x", T1)}, prune=True),
            [],
            id="prune-never-deletes-another-sources-name",
        ),
        pytest.param(
            facts(
                secrets={"KEPT": T1},
                owned={"KEPT": (SRC, "x", T1)},
                prune=True,
                in_file={SECRET: {"KEPT"}, VARIABLE: set()},
            ),
            [],
            id="prune-keeps-names-not-selected-by-keys-but-still-in-the-file",
        ),
        pytest.param(
            facts(
                variables_wanted={"URL": "https://a"},
                secrets={"URL": T1},
                owned={"URL": (SRC, "x", T1)},
                prune=True,
            ),
            [
                Op("create", VARIABLE, "URL", "missing on GitHub"),
                Op("delete", SECRET, "URL", "left the file (created by sops-deploy)"),
            ],
            id="key-made-public-moves-from-secret-to-variable",
        ),
    ],
)
def test_plan(given: Facts, expected: list[Op]) -> None:
    """Each situation yields exactly the operations listed (names and reasons, no values)."""
    assert plan(given, tag) == expected


def test_next_state_records_githubs_time_and_drops_pruned_names() -> None:
    """After a sync the state holds the new tag, GitHub's updated_at, the source; a deleted
    name is gone, and another source's entry is kept as it was."""
    given = facts(
        wanted={"API_TOKEN": "v2"},
        secrets={"API_TOKEN": T1, "OLD": T1, "THEIRS": T1},
        owned={
            "API_TOKEN": (SRC, tag("API_TOKEN", "v1"), T1),
            "OLD": (SRC, "x", T1),
            "THEIRS": ("secrets/other.env", "y", T1),
        },
        prune=True,
    )
    ops = plan(given, tag)
    new = next_state(given, ops, tag, {"API_TOKEN": T2, "THEIRS": T1}, "c2FsdA==")
    assert new.secrets == {
        "API_TOKEN": Owned(SRC, tag("API_TOKEN", "v2"), T2),
        "THEIRS": Owned("secrets/other.env", "y", T1),
    }
    assert State.parse(new.render("s")).content() == new.content()


def test_tags_are_keyed_by_identity_salt_scope_and_name(
    age_id: AgeIdentity, other_age_id: AgeIdentity
) -> None:
    """A tag depends on the value, the name, the scope, the salt and the age identity;
    it never contains the value."""
    salt = new_salt()
    a = Tagger(age_id.secret, salt, "actions:o/r:")
    value = "hunter2-secret-value"
    t = a.tag("API_TOKEN", value)
    assert t == Tagger(age_id.secret, salt, "actions:o/r:").tag("API_TOKEN", value)
    assert a.kid == age_id.public
    others = {
        a.tag("API_TOKEN", value + "x"),
        a.tag("OTHER", value),
        Tagger(age_id.secret, salt, "actions:o/other:").tag("API_TOKEN", value),
        Tagger(age_id.secret, new_salt(), "actions:o/r:").tag("API_TOKEN", value),
        Tagger(other_age_id.secret, salt, "actions:o/r:").tag("API_TOKEN", value),
    }
    assert t not in others
    assert len(others) == 5
    assert value not in t
    assert len(t) == 22
    assert age_id.secret not in repr(a)


@pytest.mark.parametrize(
    ("key", "prefix", "rule"),
    [
        pytest.param("my-key", "", "github-name", id="dash"),
        pytest.param("GITHUB_SHA_X", "", "github-name", id="github-prefix"),
        pytest.param("github_lower", "", "github-name", id="github-prefix-any-case"),
        pytest.param("9LIVES", "", "github-name", id="digit-first"),
        pytest.param("SOPS_DEPLOY_SYNC", "", "github-name", id="state-name"),
        pytest.param("TOKEN", "", None, id="valid"),
        pytest.param("SHA", "GITHUB_", "github-name", id="prefix-makes-it-reserved"),
        pytest.param("9LIVES", "APP_", None, id="prefix-fixes-digit-first"),
    ],
)
def test_github_names(key: str, prefix: str, rule: str | None) -> None:
    """Names GitHub would refuse are problems naming the key, never the value."""
    problems = names.name_problems(prefix, [Entry(key, "the-value-1234", "f.env", 3)])
    assert [p.rule for p in problems] == ([rule] if rule else [])
    for p in problems:
        assert p.key == key
        assert p.line == 3
        assert "the-value-1234" not in str(p)


def test_names_that_differ_only_in_case_collide() -> None:
    """GitHub names ignore case: Token and TOKEN cannot both be synced."""
    entries = [Entry("Token", "a1234", "f.env", 1), Entry("TOKEN", "b1234", "f.env", 2)]
    assert [p.rule for p in names.name_problems("", entries)] == ["github-name-collision"]


def test_keys_sops_stores_unencrypted_are_public(
    sops_bin: str, age_id: AgeIdentity, tmp_path: Path
) -> None:
    """A key sops leaves unencrypted (here by --unencrypted-regex) is public; others are not."""
    for fmt, text in (
        ("dotenv", "PUBLIC_URL=https://example.com\nAPI_TOKEN=tok_plan_99887766\n"),
        ("yaml", "PUBLIC_URL: https://example.com\nAPI_TOKEN: tok_plan_99887766\n"),
    ):
        plain = tmp_path / f"plain.{fmt}"
        plain.write_text(text)
        out = subprocess.run(
            [
                sops_bin,
                "encrypt",
                "--age",
                age_id.public,
                "--unencrypted-regex",
                "^PUBLIC_",
                "--input-type",
                fmt,
                "--output-type",
                fmt,
                str(plain),
            ],
            check=True,
            capture_output=True,
        ).stdout
        enc = tmp_path / f"enc.{fmt}"
        enc.write_bytes(out)
        assert publicity.clear_keys(str(enc), fmt) == {"PUBLIC_URL"}, fmt
