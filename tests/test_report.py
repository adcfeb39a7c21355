"""The redaction layer and the Reporter: what is masked, in which forms, and how every
output (stderr, stdout, annotations, summary, GITHUB_OUTPUT) passes through it last."""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sops_deploy.cli import build_parser
from sops_deploy.deploy.delivery import HostResult
from sops_deploy.envfile import render
from sops_deploy.errors import HostKeyError, Problem, ValidationError
from sops_deploy.output import hints, redact, workflow
from sops_deploy.output.reporter import Reporter
from sops_deploy.plan.build import Plan

REPO = Path(__file__).resolve().parent.parent

# Secrets of the property tests: no `*` (the replacement), at least one non-letter so
# that they are matched anywhere (letter-only words are matched as whole words).
_SECRET = st.text(
    st.characters(exclude_characters="*", exclude_categories=["Cs"]), min_size=4, max_size=40
).filter(lambda v: redact.is_maskable(v) and not v.isalpha() and v == v.strip())


def _redactor(*values: str, automaton: bool = False) -> redact.Redactor:
    """A Redactor over `values`; `automaton` forces the automaton even for short texts."""
    r = redact.Redactor()
    if automaton:
        r.BUILD_COST = 0  # any direct search costs more than building
    for i, v in enumerate(values):
        r.add(v, f"KEY_{i}")
    return r


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_SECRET, min_size=1, max_size=5),
    st.lists(st.text(max_size=30), max_size=6),
    st.booleans(),
)
def test_redaction_of_arbitrary_values_in_arbitrary_text_is_complete(
    values: list[str], noise: list[str], automaton: bool
) -> None:
    """Every secret, placed anywhere in arbitrary text (even overlapping another), is gone,
    whether the text is searched directly (short) or by the automaton."""
    text = "".join(n + v for n, v in zip(noise + [""] * len(values), values, strict=False))
    text += "".join(noise) + values[0][: len(values[0]) // 2] + values[-1]
    out = _redactor(*values, automaton=automaton).scrub(text)
    for v in values:
        assert v not in out


@settings(max_examples=200, deadline=None)
@given(
    _SECRET, st.text(max_size=20), st.sampled_from(["compose", "dotenv", "shell"]), st.booleans()
)
def test_escaped_and_json_forms_are_redacted(
    value: str, noise: str, fmt: str, automaton: bool
) -> None:
    """The value as each format writes it, and inside JSON, is redacted too."""
    r = _redactor(value, automaton=automaton)
    try:
        rendered = render({"K": value}, fmt).decode()
    except Exception:  # the format cannot carry it (NUL, ${...}): nothing to leak
        rendered = ""
    for text in (rendered, json.dumps(noise + value), json.dumps([value], ensure_ascii=False)):
        out = r.scrub(text)
        for form in redact.forms(value):
            assert form not in out


@settings(max_examples=200, deadline=None)
@given(
    st.text(st.characters(categories=("Lu", "Ll")), min_size=4, max_size=12).filter(
        redact.is_maskable
    ),
    st.text(),
    st.booleans(),
)
def test_a_word_value_is_redacted_as_a_whole_word_only(
    word: str, noise: str, automaton: bool
) -> None:
    """A letters-only value is replaced where it stands alone, never inside a longer word."""
    out = _redactor(word, automaton=automaton).scrub(f"{noise} {word} {word}ing x{word}")
    for m in re.finditer(re.escape(word), out):
        before = out[m.start() - 1] if m.start() else ""
        after = out[m.end()] if m.end() < len(out) else ""
        assert (before and (before.isalnum() or before == "_")) or (
            after and (after.isalnum() or after == "_")
        )


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126)))
def test_the_shortcut_for_plain_values_gives_every_form(value: str) -> None:
    """The fast path for printable ASCII values finds the same forms as every encoder."""
    assert redact.forms(value) == redact.every_form(value)


def test_a_long_repetitive_value_is_redacted() -> None:
    """A 50,000-character value of one repeated letter and a short one inside it."""
    r = _redactor("p" * 50_000, "x1" * 5, automaton=True)
    assert r.scrub("<" + "p" * 60_000 + "x1" * 6 + ">") == "<***>"


def test_common_word_values_leave_words_readable() -> None:
    """A value equal to a common word does not turn "deploying" into "***ing"."""
    assert _redactor("deploy").scrub("deploying; deploy done") == "deploying; *** done"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        pytest.param("true", False, id="bool"),
        pytest.param("Off", False, id="bool-any-case"),
        pytest.param("YES", False, id="yes"),
        pytest.param("42", False, id="short-number"),
        pytest.param("abc", False, id="three-chars"),
        pytest.param("8080", True, id="four-chars"),
        pytest.param("127.0.0.1", True, id="address-is-secret-unless-public"),
        pytest.param("  on  ", False, id="padded-bool"),
    ],
)
def test_policy_spares_booleans_and_short_values(value: str, masked: bool) -> None:
    """Booleans (any case) and values under 4 characters are never masked."""
    out = io.StringIO()
    reporter = Reporter(out=out, err=io.StringIO(), env={"GITHUB_ACTIONS": "true"})
    reporter.mask([("K", value)])
    assert ("::add-mask::" in out.getvalue()) is masked
    assert (reporter.scrub(f"x {value.strip()} y") != f"x {value.strip()} y") is masked


def _github(tmp_path: Path, **extra: str) -> tuple[Reporter, io.StringIO, io.StringIO]:
    env = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(tmp_path / "output"),
        "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        **extra,
    }
    out, err = io.StringIO(), io.StringIO()
    return Reporter(out=out, err=err, env=env), out, err


def _outputs(tmp_path: Path) -> dict[str, str]:
    text = (tmp_path / "output").read_text()
    found = re.findall(r"^([\w-]+)<<(ghadelim_\w+)\n(.*?)\n\2$", text, re.S | re.M)
    return {name: value for name, _, value in found}


def test_an_output_that_would_carry_a_masked_value_is_warned_about_by_name(
    tmp_path: Path,
) -> None:
    """The output is written redacted, with a ::warning naming output and key, not value."""
    reporter, out, _ = _github(tmp_path)
    reporter.mask([("LAN_IP", "192.0.2.10"), ("DEBUG", "true")])
    reporter.set_outputs({"hosts": "deploy@192.0.2.10:22", "changed": "true"})
    outputs = _outputs(tmp_path)
    assert outputs == {"hosts": "deploy@***:22", "changed": "true"}
    warning = next(line for line in out.getvalue().splitlines() if line.startswith("::warning"))
    assert "hosts" in warning
    assert "LAN_IP" in warning
    assert "public" in warning
    assert "192.0.2.10" not in warning


def test_a_word_value_inside_an_output_is_reported_as_dropped(tmp_path: Path) -> None:
    """GitHub masks substrings: an output containing a word value is named as dropped."""
    reporter, out, _ = _github(tmp_path)
    reporter.mask([("STAGE", "deploy")])
    reporter.set_outputs({"report": '{"status": "deploying"}'})
    assert "is dropped by GitHub" in out.getvalue()


def test_post_command_lines_are_cut_only_after_redaction(tmp_path: Path) -> None:
    """A value straddling the 300-character cut is still fully redacted."""
    from sops_deploy.remote.postcommand import CommandRun

    secret = "S3cr3t-" + "x" * 40
    reporter, _, err = _github(tmp_path)
    reporter.mask([("TOKEN", secret)])
    line = "a" * (workflow.LINE_LIMIT - 10) + secret
    result = HostResult("h", "failed", error=None, commands=[CommandRun("post-command", 1, [line])])
    reporter.host_result(result)
    assert secret[:10] not in err.getvalue()
    assert "***" in err.getvalue()


HOSTILE = "\x1b[31mred\x1b[0m\n::error title=x::fake\n  ::add-mask::x\n::stop-commands::tok\r\x00"


@pytest.mark.parametrize("where", ["info", "warn", "problem", "summary"])
def test_text_from_a_server_never_becomes_a_workflow_command(tmp_path: Path, where: str) -> None:
    """Lock fields, SFTP errors, remote paths: no line may start `::`, no control character."""
    reporter, out, err = _github(tmp_path)
    if where == "info":
        reporter.info(f"lock held by {HOSTILE}")
    elif where == "warn":
        reporter.warn(f"server said {HOSTILE}")
    elif where == "problem":
        reporter.problems([Problem(HOSTILE, 3, "K", "rule", HOSTILE, HOSTILE)])
    else:
        reporter.append_summary(HOSTILE)
    ours = {"::warning", "::error", "::add-mask::"}
    for text in (
        out.getvalue(),
        err.getvalue(),
        (tmp_path / "summary.md").read_text() if (tmp_path / "summary.md").exists() else "",
    ):
        assert "\x1b" not in text
        assert "\x00" not in text
        assert "\r" not in text
        assert "::stop-commands::" not in text
        for line in text.splitlines():
            if line.lstrip().startswith("::"):
                assert any(line.startswith(c) for c in ours)
                assert line.count("\n") == 0
                assert line.startswith("::")
                assert not line.startswith("::add-mask")


def test_a_failed_host_is_an_error_annotation_with_its_fix_in_action_words(
    tmp_path: Path,
) -> None:
    """One ::error per failed host (title, host, reason, fix); the action names its inputs."""
    reporter, out, _ = _github(tmp_path, SOPS_DEPLOY_INTERFACE="action")
    error = HostKeyError("the host key of web1 is unknown", "pass --host-key-fingerprint SHA256:x")
    failed = HostResult("deploy@web1:22", "failed", "/srv/.env", error=error)
    ok = HostResult("deploy@web2:22", "changed", "/srv/.env", added=["A"])
    reporter.summary("deploy", Plan({}, b"A=1\n", "compose"), [failed, ok])
    errors = [line for line in out.getvalue().splitlines() if line.startswith("::error")]
    assert len(errors) == 1
    assert "title=Host key not trusted%3A deploy@web1%3A22" in errors[0]
    assert "`host-key-fingerprint:`" in errors[0]
    assert "--host-key-fingerprint" not in errors[0]
    summary = (tmp_path / "summary.md").read_text()
    assert "❌ failed" in summary
    assert "**fix:**" in summary


def test_drift_found_by_check_is_annotated_per_host_with_the_legend(tmp_path: Path) -> None:
    """check: one ::error per drifted host naming the keys; the summary has the legend."""
    reporter, out, _ = _github(tmp_path)
    drift = HostResult("web1", "drift", "/srv/.env", added=["NEW"], changed=["API_TOKEN"])
    reporter.summary("check", Plan({}, b"", "compose"), [drift])
    (error,) = [line for line in out.getvalue().splitlines() if line.startswith("::error")]
    assert "NEW" in error
    assert "API_TOKEN" in error
    assert "Drift on web1" in error
    assert (
        "removed: on the host, not in the encrypted file" in (tmp_path / "summary.md").read_text()
    )


def test_cli_hints_name_flags(tmp_path: Path) -> None:
    """On the command line the same fix names the flag."""
    reporter, _, err = _github(tmp_path)
    reporter.failure(HostKeyError("unknown", "pass --host-key-fingerprint SHA256:x or --mirror"))
    assert "--host-key-fingerprint" in err.getvalue()
    assert "--mirror" in err.getvalue()


def test_every_flag_translated_for_the_action_is_a_real_input_and_a_real_flag() -> None:
    """hints' table agrees with action.yml's inputs and the CLI's flags."""
    inputs = set(yaml.safe_load((REPO / "action.yml").read_text())["inputs"])
    flags = {
        opt[2:]
        for action in _all_actions(build_parser())
        for opt in action.option_strings
        if opt.startswith("--")
    }
    for flag in hints.SAME_NAME | set(hints.RENAMED):
        assert flag in flags, flag
        assert hints.action_input(flag) in inputs, flag
    assert hints.render("use --mirror URL", hints.ACTION) == "use `tools-mirror:` URL"


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    found = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _all_actions(sub)
    return found


def test_validation_problems_name_value_fragments_by_line_only(tmp_path: Path) -> None:
    """A key that looks like a piece of a value is never printed, nor its upper-cased form."""
    fragment = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
    reporter, out, err = _github(tmp_path)
    problem = Problem("f.env", 7, fragment, "lowercase-key", "lowercase", f"rename {fragment}")
    reporter.failure(ValidationError([problem]))
    text = out.getvalue() + err.getvalue() + (tmp_path / "summary.md").read_text()
    assert fragment.upper() not in text
    assert "line 7" in out.getvalue()


def test_the_step_summary_stays_within_githubs_limit_with_a_note(tmp_path: Path) -> None:
    """A summary larger than 1 MiB is cut at a line, with a note saying so."""
    reporter, _, _ = _github(tmp_path)
    reporter.append_summary("| row |\n" * 300_000)
    reporter.append_summary("after the cut")
    text = (tmp_path / "summary.md").read_text()
    assert len(text.encode()) <= workflow.SUMMARY_LIMIT
    assert "The summary was cut here" in text
    assert "after the cut" not in text


def test_outputs_stay_within_githubs_limit(tmp_path: Path) -> None:
    """Outputs past the 1 MB per job budget are cut (a list at a comma) and warned about."""
    reporter, out, _ = _github(tmp_path)
    keys = ",".join(f"KEY_{i:06d}" for i in range(80_000))
    reporter.set_outputs({"added-keys": keys, "changed": "true"})
    outputs = _outputs(tmp_path)
    total = sum(workflow.utf16_size(v) for v in outputs.values())
    assert total <= workflow.OUTPUTS_LIMIT
    assert outputs["changed"] == "true"
    kept = outputs["added-keys"].split(",")
    assert 1000 < len(kept) < 80_000
    assert kept == keys.split(",")[: len(kept)]
    assert "Output added-keys truncated" in out.getvalue()


def test_redaction_scales_with_the_text_not_with_texts_times_values(tmp_path: Path) -> None:
    """Direct search until it has cost what building the automaton would (10k values: a
    deploy's few texts never build it), then the automaton, built once per set of values."""
    r = redact.Redactor()
    r.add_all((f"K{i}", f"value-{i:05d}-S3cret") for i in range(10_000))
    assert r.scrub("short: value-00001-S3cret") == "short: ***"
    long_text = "\n".join(f"line {i}: value-{i:05d}-S3cret" for i in range(200))
    assert r.scrub(long_text) == "\n".join(f"line {i}: ***" for i in range(200))
    assert r._matcher is None  # 6 kB searched directly: cheaper than 180 kB of forms
    budget = r.BUILD_COST * 10_000 * len("value-00000-S3cret")
    while r._matcher is None:
        assert r.scrub(long_text) == "\n".join(f"line {i}: ***" for i in range(200))
        assert r._spent <= budget
    first = r._matcher
    r.scrub(long_text + "again")
    assert r._matcher is first  # built once per set of values
    r.add("another-S3cret-value")
    assert r._matcher is None  # a new set of values starts afresh
    assert r._spent == 0
    assert r.scrub("x another-S3cret-value value-00002-S3cret") == "x *** ***"
