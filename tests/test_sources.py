"""The resolver keeps where each value came from (flag, variable, action input, YAML key
and line, default), and a refused value is named in the words of the place the user wrote
it: `--port 65536`, `SOPS_DEPLOY_PORT=65536`, input `port: 65536`, `sops-deploy.yaml:5:
`port: 65536``. Every refusal exits 2; the nearest valid value passes from each source."""

from __future__ import annotations

from pathlib import Path

import pytest

from sops_deploy.cli import main
from sops_deploy.inputs import configfile, precedence
from sops_deploy.inputs.sources import Source
from sops_deploy.inputs.table import OPTIONS
from sops_deploy.output import hints

ACTION = {"SOPS_DEPLOY_INTERFACE": "action"}
YAML_LINE = 5  # the line of the option's key in the file `_config` writes

# (option attribute, bad text, what the refusal says after the subject, the nearest
# valid text and its typed value)
OPTION_CASES = [
    ("port", "65536", "must be at most 65535", "65535", 65535),
    ("timeout", "0", "must be positive", "0.5", 0.5),
    ("format", "yaml", "is not one of", "dotenv", "dotenv"),
    ("interpolate", "sometimes", "is not one of", "off", "off"),  # no action input: a variable
    ("file_mode", "0644", "makes the secrets readable by every user", "0640", 0o640),
    ("hosts", "bad host!", "is not [user@]host[:port]", "web1.example.com", ("web1.example.com",)),
]
SOURCES = ("flag", "variable", "action", "yaml")


def _config(tmp: Path, key: str, text: str, kind: str) -> Path:
    """sops-deploy.yaml whose environment `prod` sets `key` on line YAML_LINE."""
    other = "files: [x.env]" if key == "hosts" else "hosts: [h.example]"
    value = text if kind in ("int", "number") else f'"{text}"'
    path = tmp / "sops-deploy.yaml"
    path.write_text(
        f"environments:\n  prod:\n    {other}\n    remote-path: /srv/app/.env\n"
        f"    {key}: {value}\n",
        encoding="utf-8",
    )
    return path


def _inputs(tmp: Path, attr: str, text: str, source: str) -> tuple[list[str], dict[str, str]]:
    """The deploy command line and environment that set `attr` to `text` from `source`."""
    option = OPTIONS[attr]
    assert option.flag
    assert option.yaml
    argv = ["deploy", "--remote-path", "/srv/app/.env"]
    if attr != "hosts" and source != "yaml":
        argv += ["--host", "h.example"]
    variable = option.env_names()[0]
    if source == "flag":
        return [*argv, f"{option.flag}={text}"], {}
    if source == "variable":
        return argv, {variable: text}
    if source == "action":
        return argv, {variable: text, **ACTION}
    config = _config(tmp, option.yaml, text, option.kind)
    return ["deploy", "--config", str(config), "--env", "prod"], {}


def _subject(tmp: Path, attr: str, text: str, source: str) -> str:
    """How the refusal names the value: in the words of the place it was written."""
    option = OPTIONS[attr]
    assert option.flag
    quoted = option.kind not in ("int", "number") and attr != "file_mode"
    shown = repr(text) if quoted else text
    if source == "flag":
        return f"{option.flag} {shown}"
    if source == "variable":
        return f"{option.env_names()[0]}={shown}"
    if source == "action":
        given = hints.action_input(option.flag.removeprefix("--"))
        if given is None:  # an option the action has no input for: its variable
            return f"{option.env_names()[0]}={shown}"
        return f"input `{given}: {text}`"
    return f"{tmp / 'sops-deploy.yaml'}:{YAML_LINE}: `{option.yaml}: {text}`"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("attr", "bad", "why", "good", "typed"), OPTION_CASES, ids=[c[0] for c in OPTION_CASES]
)
def test_a_refusal_names_the_source_the_user_used(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    attr: str,
    bad: str,
    why: str,
    good: str,
    typed: object,
    source: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    argv, environ = _inputs(tmp_path, attr, bad, source)
    assert main(argv, environ) == 2
    err = capsys.readouterr().err
    assert f"error: {_subject(tmp_path, attr, bad, source)} {why}" in err, err
    others = {"flag": "--", "variable": "SOPS_DEPLOY_", "action": "input `"}
    for other, mark in others.items():
        if other != source:
            assert not err.startswith(f"error: {mark}"), err


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize(
    ("attr", "bad", "why", "good", "typed"), OPTION_CASES, ids=[c[0] for c in OPTION_CASES]
)
def test_the_nearest_valid_value_passes_and_keeps_its_source(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attr: str,
    bad: str,
    why: str,
    good: str,
    typed: object,
    source: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    argv, environ = _inputs(tmp_path, attr, good, source)
    flags = _flags(argv)
    resolved = precedence.resolve("deploy", flags, environ, configfile.layer)
    assert resolved.values[attr] == typed
    origin = resolved.sources[attr]
    has_input = hints.action_input(str(OPTIONS[attr].flag).removeprefix("--")) is not None
    want = {
        "flag": Source.FLAG,
        "variable": Source.ENV,
        "action": Source.ACTION_INPUT if has_input else Source.ENV,
        "yaml": Source.YAML,
    }[source]
    assert origin.source is want
    if source == "yaml":
        assert (origin.file, origin.line) == (str(tmp_path / "sops-deploy.yaml"), YAML_LINE)
    assert resolved.sources["lock_timeout"].source is Source.DEFAULT


def _flags(argv: list[str]) -> dict[str, object]:
    from sops_deploy.cli import build_parser

    return vars(build_parser().parse_args(argv))


@pytest.mark.parametrize(
    ("environ", "hint"),
    [
        pytest.param({}, "use --port 22", id="flag"),
        pytest.param({"SOPS_DEPLOY_PORT": "0"}, "set SOPS_DEPLOY_PORT=22", id="variable"),
        pytest.param({"SOPS_DEPLOY_PORT": "0", **ACTION}, "set the input `port: 22`", id="action"),
    ],
)
def test_the_fix_is_written_where_the_value_was(
    capsys: pytest.CaptureFixture[str], environ: dict[str, str], hint: str
) -> None:
    argv = ["deploy", "--host", "h.example", "--remote-path", "/srv/app/.env"]
    assert main([*argv, *([] if environ else ["--port=0"])], environ) == 2
    err = capsys.readouterr().err
    assert f"fix: {hint}" in err, err


def test_a_kind_error_from_the_action_names_the_input(capsys: pytest.CaptureFixture[str]) -> None:
    """A word where a number belongs: the input's name, not SOPS_DEPLOY_RETRIES."""
    argv = ["deploy", "--host", "h.example", "--remote-path", "/srv/app/.env"]
    assert main(argv, {"SOPS_DEPLOY_RETRIES": "many", **ACTION}) == 2
    err = capsys.readouterr().err
    assert "error: input `retries: many` is not a number" in err, err
    assert main(argv, {"SOPS_DEPLOY_RETRIES": "many"}) == 2
    assert "error: SOPS_DEPLOY_RETRIES='many' is not a number" in capsys.readouterr().err


def test_every_action_input_named_like_a_flag_is_known_as_an_input() -> None:
    """An action input's refusal names the input: hints' table lists every input of
    action.yml that is also a flag (else it would be named as its SOPS_DEPLOY_ variable)."""
    import yaml

    root = Path(__file__).resolve().parent.parent
    inputs = set(yaml.safe_load((root / "action.yml").read_text())["inputs"])
    flags = {o.flag.removeprefix("--") for o in OPTIONS.values() if o.flag}
    assert inputs & flags <= hints.SAME_NAME | set(hints.RENAMED)


@pytest.mark.parametrize(
    ("environ", "said"),
    [
        pytest.param(
            {"SOPS_DEPLOY_POST_COMMAND": " "}, "SOPS_DEPLOY_POST_COMMAND is", id="variable"
        ),
        pytest.param(
            {"SOPS_DEPLOY_POST_COMMAND": " ", **ACTION}, "input `post-command:` is", id="action"
        ),
    ],
)
def test_a_refusal_that_hides_the_value_still_names_the_source(
    capsys: pytest.CaptureFixture[str], environ: dict[str, str], said: str
) -> None:
    """`--post-command is empty …` shows no value; reworded, it shows none either."""
    argv = ["deploy", "--host", "h.example", "--remote-path", "/srv/app/.env"]
    assert main(argv, environ) == 2
    assert f"error: {said} empty or contains a NUL character" in capsys.readouterr().err
    valid = {**environ, "SOPS_DEPLOY_POST_COMMAND": "docker compose up -d"}
    resolved = precedence.resolve("deploy", _flags(argv), valid)
    assert resolved.values["post_command"] == "docker compose up -d"
