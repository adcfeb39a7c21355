"""Text from a server never becomes live Markdown or HTML in the step summary: a lock
file whose `user` and `host` hold a link, an image, raw HTML and a bare URL (anyone who can
write the directory writes it) fails the deploy with those shown as inert text."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sops_deploy.output import mdsafe
from tests.test_action import run_on_github

HOSTILE_USER = "[click me](https://evil.example/login) <img src=https://evil.example/t.png>"
HOSTILE_HOST = "**bold** www.evil.example <script>x</script> `code` | cell a@evil.example"


def test_lock_holder_text_is_inert_in_the_summary(
    base_env: dict[str, str],
    encrypt: Callable[..., Path],
    target_args: list[str],
    remote_dir: Path,
    tmp_path: Path,
) -> None:
    """The deploy waits for the planted lock, fails naming its holder, and the summary shows
    the holder's text escaped: no link, image, HTML tag, autolink, emphasis or extra cell."""
    lock = remote_dir / ".env.sops-deploy.lock"
    lock.write_text(json.dumps({"user": HOSTILE_USER, "host": HOSTILE_HOST, "pid": 1}))
    proc, files = run_on_github(
        base_env,
        tmp_path,
        "deploy",
        "--file",
        str(encrypt("API_TOKEN=tok_md_11223344\n")),
        *target_args,
        "--lock-timeout",
        "0.5",
    )
    assert proc.returncode == 1, proc.stdout
    summary = files["GITHUB_STEP_SUMMARY"].read_text()
    assert "is held by" in summary
    assert "evil" in summary  # the holder is named …
    for live in (r"\]\(", "<img", "<script", "https:", r"www\.evil", r"\*\*bold", "a@evil"):
        assert re.search(r"(?<!\\)" + live, summary) is None, live  # … but nothing is live
    for row in (ln for ln in summary.splitlines() if ln.startswith("| ")):
        cells = re.split(r"(?<!\\)\|", row)
        assert len(cells) in (9, 5), row  # the table's own columns only
    assert lock.exists()  # not ours to remove


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("[x](https://e.example)", id="link"),
        pytest.param("![i](https://e.example/i.png)", id="image"),
        pytest.param("<img src=x onerror=alert(1)>", id="html"),
        pytest.param("https://e.example/a_b", id="autolink"),
        pytest.param("www.e.example", id="www-autolink"),
        pytest.param("&lt;b&gt;", id="entity"),
        pytest.param("a|b\nc", id="pipe-newline"),
    ],
)
def test_inert_markdown_forms(value: str) -> None:
    """Each escaped form has every punctuation character escaped and no line break; the
    code span's fence is longer than any backtick run inside."""
    out = mdsafe.text(value)
    assert "\n" not in out
    assert re.search(r"(?<!\\)[\[\]<>()&!|:.]", out) is None, out
    span = mdsafe.code("a``b" + value)
    assert span.startswith("```")
    assert span.endswith("```")
    assert re.search(r"(?<!\\)\|", span) is None
