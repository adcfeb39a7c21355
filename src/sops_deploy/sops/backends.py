"""The one table of sops key-backend credentials: which variables reach the sops child and
nothing else, and which of them are secrets.

Every row is a variable (or, ending in `*`, a prefix) that a sops backend reads: AWS KMS
(incl. web identity / GitHub OIDC), Vault/OpenBao transit, GnuPG, GCP KMS, Azure Key
Vault. The front door (`inputs/environment.py`) takes exactly these from the process environment
for sops (`for_sops`), removes them from every other child's environment (`Match exec`,
git, go, age-keygen: `is_backend`), and masks the values of the secret rows before
anything prints (`secret_values`). docs/keyless.md shows this table; a test keeps the two
equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Credential:
    """One row: the variable (a trailing `*` makes it a prefix), its backend, whether its
    value is a secret (masked and redacted everywhere), and what it is."""

    name: str
    backend: str
    secret: bool
    what: str

    def matches(self, variable: str) -> bool:
        if self.name.endswith("*"):
            return variable.startswith(self.name[:-1])
        return variable == self.name


AWS, VAULT, PGP, GCP, AZURE = "aws_kms", "hc_vault", "pgp", "gcp_kms", "azure_kv"

TABLE: tuple[Credential, ...] = (
    Credential("AWS_ACCESS_KEY_ID", AWS, True, "access key id (static or temporary)"),
    Credential("AWS_SECRET_ACCESS_KEY", AWS, True, "secret access key"),
    Credential("AWS_SESSION_TOKEN", AWS, True, "session token of temporary credentials"),
    Credential("AWS_REGION", AWS, False, "region"),
    Credential("AWS_DEFAULT_REGION", AWS, False, "region (older name)"),
    Credential("AWS_PROFILE", AWS, False, "profile in the config/credentials files"),
    Credential("AWS_CONFIG_FILE", AWS, False, "path of the config file"),
    Credential("AWS_SHARED_CREDENTIALS_FILE", AWS, False, "path of the credentials file"),
    Credential("AWS_ENDPOINT_URL*", AWS, False, "endpoints (AWS_ENDPOINT_URL_STS, _KMS, ...)"),
    Credential("AWS_ROLE_ARN", AWS, False, "role to assume with the web identity token"),
    Credential("AWS_WEB_IDENTITY_TOKEN_FILE", AWS, False, "path of the OIDC token file"),
    Credential("AWS_ROLE_SESSION_NAME", AWS, False, "session name for that role"),
    Credential("AWS_STS_REGIONAL_ENDPOINTS", AWS, False, "STS endpoint choice"),
    Credential("AWS_EC2_METADATA_DISABLED", AWS, False, "instance metadata off"),
    Credential("AWS_CA_BUNDLE", AWS, False, "path of extra CA certificates"),
    Credential("VAULT_ADDR", VAULT, False, "server address"),
    Credential("VAULT_TOKEN", VAULT, True, "token"),
    Credential("VAULT_NAMESPACE", VAULT, False, "namespace"),
    Credential("VAULT_CACERT", VAULT, False, "path of the CA certificate"),
    Credential("VAULT_CAPATH", VAULT, False, "directory of CA certificates"),
    Credential("VAULT_CLIENT_CERT", VAULT, False, "path of the client certificate"),
    Credential("VAULT_CLIENT_KEY", VAULT, False, "path of the client key"),
    Credential("VAULT_SKIP_VERIFY", VAULT, False, "TLS verification off"),
    Credential("VAULT_TLS_SERVER_NAME", VAULT, False, "TLS server name"),
    Credential("GNUPGHOME", PGP, False, "GnuPG home (keyring, agent socket)"),
    Credential("GPG_AGENT_INFO", PGP, False, "agent socket (old GnuPG)"),
    Credential("GPG_TTY", PGP, False, "terminal for the pinentry"),
    Credential("SOPS_GPG_EXEC", PGP, False, "which gpg sops runs"),
    Credential("GOOGLE_APPLICATION_CREDENTIALS", GCP, False, "path of the credentials file"),
    Credential("GOOGLE_CREDENTIALS", GCP, True, "credentials JSON (or its path)"),
    Credential("GOOGLE_OAUTH_ACCESS_TOKEN", GCP, True, "OAuth access token"),
    Credential("AZURE_CLIENT_SECRET", AZURE, True, "service principal secret"),
    Credential("AZURE_CLIENT_CERTIFICATE_PASSWORD", AZURE, True, "certificate password"),
    Credential("AZURE_PASSWORD", AZURE, True, "user password"),
    Credential("AZURE_*", AZURE, False, "tenant, client id, certificate path, authority..."),
)


def row(variable: str) -> Credential | None:
    """The table's row for `variable` (an exact name before a prefix), or None."""
    exact = next((c for c in TABLE if c.name == variable), None)
    return exact or next((c for c in TABLE if c.matches(variable)), None)


def is_backend(variable: str) -> bool:
    """Whether `variable` is a backend credential (reaches sops only)."""
    return row(variable) is not None


def for_sops(environ: Mapping[str, str]) -> dict[str, str]:
    """The backend variables of `environ` that sops gets (set and non-empty)."""
    return {k: v for k, v in environ.items() if v and is_backend(k)}


def secret_values(environ: Mapping[str, str]) -> Iterator[str]:
    """The values of the secret rows set in `environ`: masked before anything prints."""
    for name, value in environ.items():
        found = row(name)
        if found is not None and found.secret and value.strip():
            yield value


def markdown_table() -> str:
    """The table as docs/keyless.md shows it."""
    lines = ["| variable | backend | secret | what |", "|---|---|---|---|"]
    lines += [
        f"| `{c.name}` | {c.backend} | {'yes' if c.secret else 'no'} | {c.what} |" for c in TABLE
    ]
    return "\n".join(lines)
