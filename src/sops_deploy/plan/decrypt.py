"""Every source file inspected, then decrypted by sops in memory, in order: the one way
the encrypted files become plaintext for deploy, check, diff, validate, github-sync and
the head start (`build.read_secrets` then makes them Secrets).

It imports only `sops/` and `stores/source.py`, so the head start can run it in its
thread while the main thread loads the plan's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sops_deploy.errors import UsageError
from sops_deploy.sops import runner

if TYPE_CHECKING:
    from sops_deploy.inputs.settings import Settings

Decrypted = list[tuple[runner.EncryptedFile, bytes]]


def decrypt_all(settings: Settings, sops_bin: str = "") -> Decrypted:
    """Every source of `settings`, in order: encrypted files decrypted by sops (each
    inspected before any is decrypted, so a file that is not sops-encrypted fails before
    sops runs; no `sops_bin`: found when a file needs it), a `vault://` or `aws-sm://`
    source read from its store as the plaintext of a JSON file (`stores/source.py`)."""
    if not settings.files:
        raise UsageError("no encrypted file given", "pass --file secrets/.env.encrypted")
    from sops_deploy.stores.source import read_all  # files and vault:// / aws-sm://

    return read_all(settings, sops_bin)
