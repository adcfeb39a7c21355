"""One JSON secret of AWS Secrets Manager, through boto3 (the `[aws]` extra).

boto3 finds credentials and region the standard way (environment, shared files, SSO,
instance or container roles) and honours `AWS_ENDPOINT_URL`; it is imported only here.
A write is `PutSecretValue` with a fresh version token, so going back to an earlier
content (A, B, A) makes A the current version again; the secret is tagged
`managed-by=sops-deploy`, and one without that tag is refused unless `--adopt`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sops_deploy import defaults
from sops_deploy.errors import StoreError, UsageError
from sops_deploy.stores.model import MANAGED_BY, MANAGER, SOURCE, Current

INSTALL_HINT = "install the AWS extra: pip install 'sops-deploy[aws]'"
CREDENTIAL_CODES = {
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredTokenException",
    "ExpiredToken",
    "IncompleteSignature",
}
CREDENTIAL_HINT = (
    "give valid AWS credentials the standard way (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
    "AWS_PROFILE, or a role: aws-actions/configure-aws-credentials on GitHub) and a region "
    "(AWS_REGION)"
)


@dataclass(frozen=True)
class AwsAccess:
    timeout: float = defaults.TIMEOUT
    retries: int = 2


def client(access: AwsAccess) -> Any:
    """A Secrets Manager client with bounded connect/read timeouts and retries."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise UsageError(
            "aws-sync and aws-sm:// need boto3, which is not installed", INSTALL_HINT
        ) from None
    config = Config(
        connect_timeout=access.timeout,
        read_timeout=access.timeout,
        retries={"max_attempts": access.retries + 1, "mode": "standard"},
    )
    try:
        session = boto3.session.Session()
        if not session.region_name:  # an endpoint URL alone would let botocore sign for ""
            raise UsageError("no AWS region: set AWS_REGION", "e.g. AWS_REGION=eu-west-1")
        return session.client("secretsmanager", config=config)
    except UsageError:
        raise
    except Exception as exc:  # NoRegionError and friends: botocore's own classes
        raise _error(exc, "the Secrets Manager client") from None


def _error(exc: BaseException, what: str) -> StoreError | UsageError:
    """A botocore failure in plain words: never a value, never a credential."""
    from botocore import exceptions as be

    if isinstance(exc, be.NoRegionError):
        return UsageError("no AWS region: set AWS_REGION", "e.g. AWS_REGION=eu-west-1")
    if isinstance(exc, be.ProfileNotFound):
        return UsageError(
            f"AWS profile not found: {exc}", "set AWS_PROFILE to a profile of ~/.aws/config"
        )
    if isinstance(exc, (be.NoCredentialsError, be.PartialCredentialsError)):
        return StoreError(f"no AWS credentials found for {what}", CREDENTIAL_HINT)
    if isinstance(exc, (be.ConnectTimeoutError, be.ReadTimeoutError)):
        return StoreError(
            f"AWS did not answer {what} in time ({type(exc).__name__})",
            "check AWS_ENDPOINT_URL / the network (raise --timeout for a slow network)",
        )
    if isinstance(exc, be.EndpointConnectionError):
        return StoreError(
            f"cannot reach Secrets Manager for {what}: {exc}",
            "check AWS_REGION, AWS_ENDPOINT_URL and that the endpoint is reachable from here",
        )
    if isinstance(exc, be.ClientError):
        code, said = _code_message(exc.response)
        if code in CREDENTIAL_CODES:
            return StoreError(f"AWS refused the credentials ({code}: {said})", CREDENTIAL_HINT)
        if code == "AccessDeniedException":
            return StoreError(
                f"AWS denied {what} ({code}: {said})",
                "allow secretsmanager:DescribeSecret, GetSecretValue, CreateSecret, "
                "PutSecretValue, TagResource (and kms:Encrypt/GenerateDataKey on its key)",
            )
        return StoreError(f"AWS refused {what} ({code}: {said})", "")
    if isinstance(exc, be.BotoCoreError):
        return StoreError(f"AWS request for {what} failed: {type(exc).__name__}", "")
    raise exc


def _code_message(response: Any) -> tuple[str, str]:
    """The error's code and message; an XML body (some endpoints answer an auth failure
    in the query protocol's form) is read for its own <Code> and <Message>."""
    import re

    error = response.get("Error", {})
    code, said = str(error.get("Code", "")), str(error.get("Message", ""))
    inner = re.search(r"<Code>([\w.]+)</Code>.*?<Message>(.*?)</Message>", said, re.S)
    if inner:
        code, said = inner.group(1), inner.group(2)
    return code, said[:300]


class AwsSecret:
    """The Secrets Manager secret `NAME` (a name or an ARN)."""

    command = "aws-sync"
    adopt_hint = "pass --adopt to take it over (its content becomes the file's), or another --name"

    def __init__(self, sm: Any, name: str, kms_key_id: str | None = None) -> None:
        self.sm = sm
        self.name = name
        self.kms_key_id = kms_key_id
        self.writes = 0
        self._described: dict[str, Any] = {}

    def describe(self) -> str:
        return f"aws-sm {self.name}"

    def call(self, op: str, **kw: Any) -> Any:
        """One request; None when the secret does not exist; every failure a StoreError."""
        from botocore.exceptions import BotoCoreError, ClientError

        if op not in ("describe_secret", "get_secret_value"):
            self.writes += 1
        try:
            return getattr(self.sm, op)(**kw)
        except (ClientError, BotoCoreError) as exc:
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
            if code == "ResourceNotFoundException":
                return None
            raise _error(exc, f"{op} {self.name}") from None

    def read(self) -> Current:
        described = self.call("describe_secret", SecretId=self.name)
        if described is None:
            return Current(False)
        self._described = described
        tags = {t["Key"]: t["Value"] for t in described.get("Tags", [])}
        owned = tags.get(MANAGED_BY) == MANAGER
        got = self.call("get_secret_value", SecretId=self.name)
        values: dict[str, object] = {}
        if got is not None and "SecretString" in got:
            try:
                parsed = json.loads(got["SecretString"])
            except ValueError:
                parsed = None  # not JSON: every key differs, the sync replaces it
            values = parsed if isinstance(parsed, dict) else {"": object()}
        outdated = ""
        if self.kms_key_id and not same_key(described.get("KmsKeyId"), self.kms_key_id):
            outdated = "its KMS key is not --kms-key-id"
        return Current(True, owned, values, tags.get(SOURCE, ""), outdated)

    def write(self, values: dict[str, str], current: Current, source: str) -> int:
        before = self.writes
        text = json.dumps(values, ensure_ascii=False)
        tags = [{"Key": MANAGED_BY, "Value": MANAGER}, {"Key": SOURCE, "Value": source[:256]}]
        if not current.exists:
            kw: dict[str, Any] = {"Name": self.name, "SecretString": text, "Tags": tags}
            if self.kms_key_id:
                kw["KmsKeyId"] = self.kms_key_id
            kw["Description"] = "managed by sops-deploy aws-sync"
            self.call("create_secret", **kw)
            return self.writes - before
        arn = self._described.get("ARN", self.name)
        have = {t["Key"]: t["Value"] for t in self._described.get("Tags", [])}
        if any(have.get(t["Key"]) != t["Value"] for t in tags):
            self.call("tag_resource", SecretId=arn, Tags=tags)
        if current.outdated:
            self.call("update_secret", SecretId=arn, KmsKeyId=self.kms_key_id, SecretString=text)
        elif dict(current.values) != values:
            self.call("put_secret_value", SecretId=arn, SecretString=text)
        return self.writes - before


def same_key(stored: str | None, wanted: str) -> bool:
    """The secret's KMS key is the one asked for: an ID, alias or ARN naming it the same
    (Secrets Manager may report an ARN where an ID or alias was given)."""
    if not stored:
        return False
    short = [k.rsplit(":", 1)[-1].removeprefix("key/") for k in (stored, wanted)]
    return stored == wanted or short[0] == short[1]
