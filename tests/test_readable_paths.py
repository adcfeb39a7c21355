"""Paths and names the user passed stay readable even where a secret value is one of their
words; the value stays masked everywhere else (issue 23, part 5)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sops_deploy.output.redact import Redactor
from tests.sshd import Sshd
from tests.support import CliResult, target_flags


def test_a_kept_path_is_readable_and_the_value_masked_elsewhere() -> None:
    """Inside a kept text (and only there) a masked value is left as it is."""
    r = Redactor()
    r.add("myapp", "DB_NAME")
    r.keep(["/srv/myapp/.env", "/srv/myapp"])
    assert r.scrub("wrote /srv/myapp/.env (backup /srv/myapp/.env.bak.1)") == (
        "wrote /srv/myapp/.env (backup /srv/myapp/.env.bak.1)"
    )
    assert r.scrub("lock /srv/myapp/.env.lock; db myapp") == "lock /srv/myapp/.env.lock; db ***"
    assert r.scrub("/opt/myapp/.env") == "/opt/***/.env"  # not a path the user passed


def test_without_kept_texts_the_path_is_masked() -> None:
    """The nearest case: the same value and text with nothing kept is masked in the path."""
    r = Redactor()
    r.add("myapp", "DB_NAME")
    assert r.scrub("wrote /srv/myapp/.env") == "wrote /srv/***/.env"


def test_a_secret_longer_than_a_kept_text_stays_masked() -> None:
    """A kept text never unmasks a value that does not lie wholly inside it."""
    r = Redactor()
    r.add("myapp-secret-password", "PASS")
    r.keep(["myapp"])
    assert r.scrub("pw myapp-secret-password") == "pw ***"


def test_deploy_shows_the_remote_path_and_masks_the_value(
    cli: Callable[..., CliResult],
    encrypt: Callable[..., Path],
    sshd_server: Sshd,
    tmp_path: Path,
) -> None:
    """A database named like the app: the --remote-path stays readable in every message,
    while the value printed by the post-command is masked."""
    remote = tmp_path / "srv" / "myappdb"
    remote.mkdir(parents=True)
    known = tmp_path / "known_hosts"
    known.write_text(sshd_server.known_hosts_line + "\n")
    path = encrypt("DB_NAME=myappdb\nDB_PASS=s3cret-pass-word\n", guard=False)
    result = cli(
        "deploy",
        "--file",
        str(path),
        "--post-command",
        "echo db is $(grep DB_NAME .env); exit 1",
        *target_flags(sshd_server.host, remote / ".env", known),
    )
    assert result.returncode == 1, result.output
    assert str(remote / ".env") in result.output
    rest = result.output.replace(str(remote), "")
    assert "myappdb" not in rest
    assert "db is DB_NAME='***'" in rest
    assert "s3cret-pass-word" not in result.output
