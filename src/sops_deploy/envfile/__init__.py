"""The secrets themselves: reading the decrypted plaintext, lint, merging, and rendering.

`source` owns what a plaintext means (bytes checks, the strict dotenv grammar, flat
yaml/json maps, lint); `render` owns what each target reads (encoders and a model of
each real parser, used to prove a rendered file reads back unchanged).
"""

from sops_deploy.defaults import FORMATS
from sops_deploy.envfile.common import RenderError
from sops_deploy.envfile.interpolate import expand
from sops_deploy.envfile.lint import lint, merge
from sops_deploy.envfile.render import (
    MODELS,
    RAW_STRUCTURED,
    read_values,
    render,
    render_checked,
    render_problems,
)
from sops_deploy.envfile.source import (
    KEY_RE,
    Entry,
    Secrets,
    decode,
    parse_dotenv,
)

__all__ = [
    "FORMATS",
    "KEY_RE",
    "MODELS",
    "RAW_STRUCTURED",
    "Entry",
    "RenderError",
    "Secrets",
    "decode",
    "expand",
    "lint",
    "merge",
    "parse_dotenv",
    "read_values",
    "render",
    "render_checked",
    "render_problems",
]
