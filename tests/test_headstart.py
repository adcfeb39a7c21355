"""Work started early in a thread (headstart.py) reaches its caller as if it had run there:
the value, or the very exception, where `result()` is called; sops's decryption through it
gives the plaintext of a real sops file and the same errors as `plan.decrypt_all`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from sops_deploy.errors import DecryptError, UsageError
from sops_deploy.inputs.settings import Settings
from sops_deploy.plan import background, build
from sops_deploy.sops import runner
from sops_deploy.sops.runner import AgeKeySource
from tests.support import AgeIdentity


def test_result_is_the_value_computed_in_another_thread() -> None:
    started = background.Started(lambda: threading.current_thread().name, "probe")
    assert started.result() == "probe"


def test_result_raises_the_work_s_own_exception() -> None:
    error = DecryptError("x.env: broken", "fix it", file="x.env")

    def fail() -> None:
        raise error

    started = background.Started(fail, "probe")
    with pytest.raises(DecryptError) as caught:
        started.result()
    assert caught.value is error


def _settings(files: tuple[str, ...], age: AgeIdentity, sops_bin: str) -> Settings:
    base = Settings(command="validate")
    places = replace(base.tools, sops=sops_bin)
    return replace(base, files=files, age=AgeKeySource(text=age.secret), tools=places)


def test_decrypting_gives_what_decrypt_all_gives(
    encrypt: Callable[..., Path], age_id: AgeIdentity, sops_bin: str
) -> None:
    enc = encrypt("FIRST_KEY=first-value-1\nSECOND_KEY=second-value-2\n")
    settings = _settings((str(enc),), age_id, sops_bin)
    early = background.decrypting(settings).result()
    assert early == build.decrypt_all(settings, sops_bin)
    assert early is not None
    assert early[0][0] == runner.inspect(str(enc))
    assert b"SECOND_KEY=second-value-2" in early[0][1]


def test_decrypting_errors_are_decrypt_all_s(
    tmp_path: Path, age_id: AgeIdentity, sops_bin: str
) -> None:
    missing = _settings((str(tmp_path / "absent.env"),), age_id, sops_bin)
    with pytest.raises(UsageError, match=r"absent\.env: no such file"):
        background.decrypting(missing).result()
    assert background.decrypting(_settings((), age_id, sops_bin)).result() is None
