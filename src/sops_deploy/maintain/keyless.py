"""`init` with `--age/--kms/--hc-vault-transit/--pgp`: the keys `.sops.yaml` records, the key
source that proves the round trip, and the workflow CI runs without an AGE_KEY.

Without any of these flags init generates an age key as before (`init_repo`). With them,
the rule lists exactly the given keys (plus `--ssh-recipient`), all in one key group: any
one decrypts. A KMS key makes the workflow log in to AWS through GitHub's OIDC token
(`aws-actions/configure-aws-credentials` with `role-to-assume`, `id-token: write`).
"""

from __future__ import annotations

from pathlib import Path

from sops_deploy.inputs.settings import InitOptions
from sops_deploy.sops import runner

AWS_STEP = """\
      # Keyless: GitHub's OIDC token becomes short-lived AWS credentials for a role that
      # may kms:Decrypt with the key in .sops.yaml (docs/keyless.md). Pin by commit SHA.
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{ vars.AWS_ROLE_ARN }}
          aws-region: @@REGION@@
"""
VAULT_ENV = """\
        env:
          # a token whose policy allows update on TRANSIT/decrypt/KEY (docs/keyless.md)
          VAULT_TOKEN: ${{ secrets.VAULT_TOKEN }}
"""


def by_kind(opts: InitOptions, public: str | None) -> tuple[list[str], dict[str, list[str]]]:
    """The age recipients and the other keys by `.sops.yaml` key, in the order given."""
    ages = [public] if public else []
    ages += [key for kind, key in opts.keys if kind == "age"]
    ages += [opts.ssh_recipient] if opts.ssh_recipient else []
    others: dict[str, list[str]] = {}
    for kind, key in opts.keys:
        if kind != "age":
            others.setdefault(kind, []).append(key)
    return ages, others


def key_source(opts: InitOptions, key_file: Path | None) -> runner.AgeKeySource:
    """What sops encrypts and decrypts with in init: the age key init made (and the
    backend credentials), or without one the environment's identity and credentials."""
    backend = opts.age.backend if opts.age is not None else {}
    if key_file is not None or opts.age is None:
        file = str(key_file) if key_file is not None else None
        return runner.AgeKeySource(file=file, base=opts.tools.env, backend=backend)
    return opts.age


def kinds(opts: InitOptions) -> set[str]:
    return {kind for kind, _ in opts.keys}


def workflow(text: str, opts: InitOptions) -> str:
    """The deploy workflow for keys given to init: no AGE_KEY unless an age key is listed,
    AWS through OIDC for a KMS key, VAULT_TOKEN for a transit key."""
    given = kinds(opts)
    if "age" not in given and not opts.ssh_recipient:
        text = text.replace("          age-key: ${{ secrets.AGE_KEY }}\n", "")
    needs = ["secret SSH_PRIVATE_KEY"]
    if "kms" in given:
        arn = next(key for kind, key in opts.keys if kind == "kms")
        region = arn.split(":")[3] if arn.count(":") >= 5 else "us-east-1"
        text = text.replace(
            "permissions:\n  contents: read\n",
            ("permissions:\n  contents: read\n  id-token: write  # the OIDC token for AWS\n"),
        )
        marker = f"      - uses: {opts.action_ref}\n"
        text = text.replace(marker, AWS_STEP.replace("@@REGION@@", region) + marker)
        needs.append("variable AWS_ROLE_ARN (the role CI assumes)")
    if "hc_vault_transit_uri" in given:
        text = text.replace(
            "\n          known-hosts: ${{ vars.KNOWN_HOSTS }}\n",
            ("\n          known-hosts: ${{ vars.KNOWN_HOSTS }}\n" + VAULT_ENV),
        )
        needs.append("secret VAULT_TOKEN")
    if "age" in given:
        needs.append("secret AGE_KEY")
    return text.replace(
        "# Needs: secrets AGE_KEY and SSH_PRIVATE_KEY,", f"# Needs: {', '.join(needs)},"
    )


def ci_commands(opts: InitOptions) -> list[str]:
    """The `gh` commands that give CI what the listed keys need (besides the SSH key)."""
    given = kinds(opts)
    commands = []
    if "kms" in given:
        commands.append(
            "gh variable set AWS_ROLE_ARN --body arn:aws:iam::ACCOUNT:role/ROLE  "
            "# trusts token.actions.githubusercontent.com, may kms:Decrypt (docs/keyless.md)"
        )
    if "hc_vault_transit_uri" in given:
        commands.append("gh secret set VAULT_TOKEN  # a token allowed transit decrypt")
    if "age" in given:
        commands.append("gh secret set AGE_KEY < YOUR-AGE-KEY-FILE")
    return commands
