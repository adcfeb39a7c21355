"""What a store holds, as the sync plan and the sources see it (no I/O, no reporting)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MANAGED_BY = "managed-by"
MANAGER = "sops-deploy"
SOURCE = "sops-deploy-source"


@dataclass(frozen=True)
class Current:
    """What the store holds: nothing, or a map and whether sops-deploy made it."""

    exists: bool
    owned: bool = False
    values: Mapping[str, object] = field(default_factory=dict, repr=False)
    source: str = ""  # the source recorded with the secret
    outdated: str = ""  # a setting of the secret that differs (its KMS key), named
