"""`sops-deploy init`: from an empty repository to a working deploy in one command.

Writes an age key (0600, git-ignored), `.sops.yaml`, the encrypted secrets (from an
existing `.env`), the pinned host key, and a deploy workflow — refusing to overwrite any
of them without `--force` — then prints the exact next steps. Every check that can fail
(plaintext syntax, host key) runs before the first file is written.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from sops_deploy import envfile
from sops_deploy.defaults import DEFAULT_CONFIG
from sops_deploy.errors import Problem, UsageError, ValidationError
from sops_deploy.inputs.settings import InitOptions
from sops_deploy.maintain import keyless, reader, sopscmd, sopsconfig, storedform
from sops_deploy.output.reporter import Reporter
from sops_deploy.sops import agekey, runner, tools

KEY_FILE = "secrets/age-key.txt"
ENCRYPTED = "secrets/.env.encrypted"
KNOWN_HOSTS = "secrets/known_hosts"
WORKFLOW = ".github/workflows/deploy-secrets.yml"


def run_init(
    opts: InitOptions,
    reporter: Reporter,
    ask: Callable[[str], bool],
    answer: Callable[[str], str] | None = None,
) -> None:
    """Set up `opts.root`; `ask` gets yes/no answers, `answer` a typed one (None: no
    terminal to ask in)."""
    root = opts.root
    targets = [root / sopsconfig.CONFIG_NAME, root / WORKFLOW]
    if opts.from_env is not None:
        targets.append(root / ENCRYPTED)
    if opts.host is not None:
        targets.append(root / KNOWN_HOSTS)
    existing = [str(p.relative_to(root)) for p in targets if p.exists()]
    if existing and not opts.force:
        raise UsageError(
            f"init would overwrite {', '.join(existing)}; nothing was changed",
            "pass --force to replace them (secrets/age-key.txt is never replaced: "
            "it is reused), or move them away first (see README#faq-init-overwrite)",
        )
    read = _read_plaintext(opts.from_env, reporter) if opts.from_env else None
    plaintext = read[0] if read else None
    pinned = _pin_host(opts, reporter, ask) if opts.host else None
    fmt = reader.choose(opts, answer, reporter)
    sops_bin = tools.find_sops(opts.tools) if plaintext is not None else None

    key_path = root / KEY_FILE
    public = None if opts.keys else _age_key(key_path, opts, reporter)
    _ignore(root, [KEY_FILE, *_inside(root, opts.from_env)])
    config = root / sopsconfig.CONFIG_NAME
    recipients, others = keyless.by_kind(opts, public)
    config.write_text(sopsconfig.render(recipients, others=others), encoding="utf-8")
    listed = [*recipients, *(k for keys in others.values() for k in keys)]
    reporter.info(
        f"✓ wrote {sopsconfig.CONFIG_NAME}: {ENCRYPTED} is encrypted for {', '.join(listed)}"
    )
    settings = reader.config_text(opts, fmt, ENCRYPTED, KNOWN_HOSTS)
    reader.write(root, settings, reporter, fmt)
    if read is not None and sops_bin is not None and opts.from_env is not None:
        key = keyless.key_source(opts, key_path if public else None)
        _encrypt(sops_bin, opts, read, key, config, reporter)
    if pinned is not None:
        (root / KNOWN_HOSTS).write_text(pinned + "\n", encoding="utf-8")
        reporter.info(f"✓ pinned the host key in {KNOWN_HOSTS}")
    workflow = root / WORKFLOW
    workflow.parent.mkdir(parents=True, exist_ok=True)
    workflow.write_text(_workflow(opts), encoding="utf-8")
    reporter.info(f"✓ wrote {WORKFLOW}")
    for line in next_steps(opts, has_secrets=plaintext is not None).splitlines():
        reporter.line(line)
    if read is not None:  # asked last: after "Back up secrets/age-key.txt" (step 1)
        _maybe_delete(opts, ask, reporter)


def _read_plaintext(path: Path, reporter: Reporter) -> tuple[dict[str, str], storedform.Stored]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"--from {path}: no such file", "pass the plaintext .env to encrypt, e.g. --from .env"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--from {path}: cannot read it ({exc})", "save it as UTF-8") from None
    entries, problems = envfile.parse_dotenv(text, str(path))
    reporter.mask([(e.key, e.value) for e in entries])
    problems += envfile.lint(entries)
    if not entries and not problems:
        problems.append(
            Problem(str(path), None, None, "empty", "no KEY=value line", "add your secrets")
        )
    if any(p.severity == "error" for p in problems):
        raise ValidationError(problems, f"fix {path} and run init again; nothing was written")
    stored = storedform.for_sops(text)
    if stored.unstorable:
        raise ValidationError(
            [
                Problem(
                    str(path),
                    line,
                    key,
                    "multi-line",
                    "no one-line form of this value reads back exactly",
                    "keep it in its own sops-encrypted file",
                )
                for line, key in stored.unstorable
            ],
            f"fix {path} and run init again; nothing was written",
        )
    for line, key in stored.rewritten:
        reporter.info(
            f"  {path}:{line}: {key} spans several lines; stored on one line as "
            '"…\\n…" (the deploy reads back the same line breaks)'
        )
    for line in stored.blanked:
        reporter.info(
            f"  {path}:{line}: a line of only spaces or tabs, which sops's dotenv store "
            "refuses; stored as an empty line"
        )
    return {e.key: e.value for e in entries}, stored


def _pin_host(opts: InitOptions, reporter: Reporter, ask: Callable[[str], bool]) -> str:
    from sops_deploy.maintain import hostkeys
    from sops_deploy.remote import fingerprint

    assert opts.host is not None
    key = hostkeys.fetch(opts.host, opts.timeout)
    reporter.info(f"{opts.host} presents the host key {key.get_name()} {fingerprint(key)}")
    kind = key.get_name().removeprefix("ssh-").split("-")[0]
    if not opts.yes and not ask(
        f"Does it match `ssh-keygen -lf /etc/ssh/ssh_host_{kind}_key.pub` on the server? "
        "Pin it? [y/N] "
    ):
        raise UsageError(
            f"the host key of {opts.host} was not confirmed; nothing was written",
            "compare the fingerprint on the server itself, then run init again and answer y "
            "(or pass --yes)",
        )
    return hostkeys.known_hosts_line(opts.host, key)


def _age_key(path: Path, opts: InitOptions, reporter: Reporter) -> str:
    if path.exists():
        public = agekey.recipients_of(path.read_text(encoding="utf-8"))[0]
        reporter.info(f"✓ reusing the age key in {KEY_FILE} ({public})")
        return public
    path.parent.mkdir(parents=True, exist_ok=True)
    env = opts.tools.env
    keygen = shutil.which("age-keygen", path=env.get("PATH"))
    if keygen:
        subprocess.run(
            [keygen, "-o", str(path)],
            check=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        os.chmod(path, 0o600)
    else:
        identity, public = agekey.generate()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_private(path, f"# created: {stamp}\n# public key: {public}\n{identity}\n")
    public = agekey.recipients_of(path.read_text(encoding="utf-8"))[0]
    reporter.info(f"✓ generated an age key in {KEY_FILE} (mode 0600, git-ignored): {public}")
    return public


def write_private(path: Path, text: str) -> None:
    """Create `path` owner-only (0600) from the first instant, then write `text`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def _inside(root: Path, path: Path | None) -> list[str]:
    if path is None:
        return []
    try:
        return [path.resolve().relative_to(root.resolve()).as_posix()]
    except ValueError:
        return []


def _ignore(root: Path, names: list[str]) -> None:
    gitignore = root / ".gitignore"
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    present = {line.strip().lstrip("/") for line in text.splitlines()}
    missing = [n for n in names if n not in present]
    if missing:
        sep = "" if not text or text.endswith("\n") else "\n"
        block = "# private, never commit (sops-deploy init)\n" + "\n".join(f"/{n}" for n in missing)
        gitignore.write_text(text + sep + block + "\n", encoding="utf-8")


def _encrypt(
    sops_bin: str,
    opts: InitOptions,
    read: tuple[dict[str, str], storedform.Stored],
    key: runner.AgeKeySource,
    config: Path,
    reporter: Reporter,
) -> None:
    root, source = opts.root, opts.from_env
    assert source is not None
    plaintext, stored = read
    target = root / ENCRYPTED
    data = sopscmd.encrypt_dotenv(
        sops_bin, stored.text.encode("utf-8"), str(source), target.relative_to(root), key, config
    )
    target.parent.mkdir(parents=True, exist_ok=True)  # no age key made it: keyless
    target.write_bytes(data)
    # Prove the round trip before anyone deletes the plaintext: same keys, same values.
    enc = runner.inspect(str(target))
    entries, problems = envfile.parse_dotenv(
        runner.decrypt(sops_bin, enc, key).decode("utf-8"), str(target)
    )
    if problems or {e.key: e.value for e in entries} != plaintext:
        target.unlink()
        raise UsageError(
            f"{ENCRYPTED} does not decrypt to the same keys and values as {source}; removed it",
            "sops could not carry some line of the file faithfully: check multi-line or "
            "quoted values, then run init again",
        )
    reporter.info(f"✓ encrypted {source} into {ENCRYPTED} ({len(plaintext)} keys, verified)")


def _maybe_delete(opts: InitOptions, ask: Callable[[str], bool], reporter: Reporter) -> None:
    source = opts.from_env
    assert source is not None
    # --yes does not delete: the plaintext is the user's only copy if secrets/age-key.txt
    # (git-ignored, so `git clean -x` removes it) is lost. Deleting takes --delete-plaintext
    # or an explicit interactive "y".
    backed_up = "" if opts.keys else f"Backed up {KEY_FILE} (step 1)? Then d"
    question = f"{backed_up or 'D'}elete the plaintext {source}? [y/N] "
    if opts.delete_plaintext or (not opts.yes and ask(question)):
        source.unlink()
        reporter.info(f"✓ deleted the plaintext {source}")
    else:
        reporter.warn(
            f"{source} is still on disk in plaintext (git-ignored); delete it once "
            f"{KEY_FILE} is backed up: rm {shlex.quote(str(source))}"
        )


def _workflow(opts: InitOptions) -> str:
    template = resources.files("sops_deploy").joinpath("templates/deploy-secrets.yml")
    text = template.read_text(encoding="utf-8")
    host = json.dumps(str(opts.host)) if opts.host else "${{ vars.DEPLOY_HOST }}"
    for name, value in (
        ("BRANCH", json.dumps(_branch(opts.root))),
        ("ACTION", opts.action_ref),
        ("FILE", json.dumps(ENCRYPTED)),
        ("CONFIG", json.dumps(DEFAULT_CONFIG)),
        ("HOST", host),
        ("REMOTE_PATH", json.dumps(opts.remote_path)),
    ):
        text = text.replace(f"@@{name}@@", value)
    if opts.keys:  # the keys init was given; CI's credentials: docs/keyless.md
        return keyless.workflow(text, opts)
    if opts.ssh_recipient:  # one secret: the deploy key is also the age identity
        text = text.replace("          age-key: ${{ secrets.AGE_KEY }}\n", "")
        text = text.replace(
            "# Needs: secrets AGE_KEY and SSH_PRIVATE_KEY,",
            "# Needs: secret SSH_PRIVATE_KEY (it also decrypts: init --ssh-recipient),",
        )
    return text


def _branch(root: Path) -> str:
    """The branch checked out in `root` (the one to deploy from), else main."""
    try:
        head = (root / ".git" / "HEAD").read_text(encoding="utf-8").strip()
    except OSError:
        return "main"
    return head.removeprefix("ref: refs/heads/") if head.startswith("ref: refs/heads/") else "main"


def _shell_path(path: str) -> str:
    if path.startswith("~/"):
        return "~/" + shlex.quote(path[2:])
    return shlex.quote(path)


def ssh_key_guess() -> str:
    for name in ("id_ed25519", "id_ecdsa", "id_rsa"):
        if (Path.home() / ".ssh" / name).is_file():
            return f"~/.ssh/{name}"
    return "~/.ssh/id_ed25519"


def next_steps(opts: InitOptions, *, has_secrets: bool) -> str:
    """The exact commands that take the user from here to a deploy, locally and on GitHub."""
    host = str(opts.host) if opts.host else "USER@HOST"
    ssh_key = _shell_path(opts.ssh_key_file or ssh_key_guess())
    directory = opts.remote_path.rsplit("/", 1)[0] or "/"
    port = opts.host.port if opts.host else 22
    login = (
        f"{opts.host.user}@{opts.host.host}"
        if opts.host and opts.host.user
        else (opts.host.host if opts.host else "USER@HOST")
    )
    deploy = " ".join(
        [
            "sops-deploy deploy" + ("" if opts.keys else f" --age-key-file {KEY_FILE}"),
            "--ssh-key-file",
            ssh_key,
            "--file",
            ENCRYPTED,
            "--host",
            shlex.quote(host),
            "--remote-path",
            shlex.quote(opts.remote_path),
            "--known-hosts" if opts.host else "",
            KNOWN_HOSTS if opts.host else "",
        ]
    ).strip()
    steps = ["", "Next steps:"]
    n = 0

    def step(text: str, *commands: str) -> None:
        nonlocal n
        n += 1
        steps.append(f"  {n}. {text}")
        steps.extend(f"       {c}" for c in commands)

    if not opts.keys:
        step(
            f"Back up {KEY_FILE} (a password manager): it is git-ignored, and without it "
            "nobody can decrypt the secrets."
        )
    age_env = "" if opts.keys else f'AGE_KEY="$(cat {KEY_FILE})" '  # else: your credentials
    if not has_secrets:
        step(
            f"Create {ENCRYPTED} (opens your editor; the plaintext never touches the repo):",
            ("" if opts.keys else f"SOPS_AGE_KEY_FILE={KEY_FILE} ")
            + "sops edit --input-type dotenv --output-type dotenv "
            f"{ENCRYPTED}",
        )
    if not opts.host:
        step(
            "Pin the server's host key (compare the fingerprint with the server's own):",
            f"ssh-keyscan -t ed25519 HOST > {KNOWN_HOSTS} && ssh-keygen -lf {KNOWN_HOSTS}",
        )
    step(
        "Make sure the target directory exists on the server:",
        f"ssh -p {port} {shlex.quote(login)} {shlex.quote('mkdir -p ' + _shell_path(directory))}",
    )
    step("Deploy from this machine now:", deploy)
    step(
        "Let GitHub Actions deploy on every push (gh: https://cli.github.com):",
        *([] if opts.ssh_recipient or opts.keys else [f"gh secret set AGE_KEY < {KEY_FILE}"]),
        *keyless.ci_commands(opts),
        f"gh secret set SSH_PRIVATE_KEY < {ssh_key}",
        f"gh variable set KNOWN_HOSTS < {KNOWN_HOSTS}",
        *(["gh variable set DEPLOY_HOST --body USER@HOST"] if not opts.host else []),
        f"git add .gitignore {sopsconfig.CONFIG_NAME} secrets/ {WORKFLOW} && "
        "git commit -m 'Deploy secrets with sops-deploy' && git push",
    )
    if "OWNER/" in opts.action_ref:
        steps.append(
            f"     (in {WORKFLOW}, replace OWNER/ with the owner of the sops-deploy action, "
            "or pass --action-ref)"
        )
    step(
        "Later: rotate a value without plaintext on disk, and check the whole setup:",
        f"{age_env}sops-deploy rotate API_TOKEN --generate",
        f"{age_env}sops-deploy doctor --host {shlex.quote(host)}"
        + (f" --known-hosts {KNOWN_HOSTS}" if opts.host else ""),
    )
    return "\n".join(steps)
