"""GitHub's own contract for the REST API: its official OpenAPI description (npm
`@octokit/openapi`, installed once into the user cache), and a check of one request and
its response against it.

tests/github_api.py (the local server github-sync's tests run against) hands every request
and answer to `Contract.check`; a request the description does not allow — an unknown path
or method, a query parameter it does not declare or of the wrong type, a missing required
one, a body that its schema refuses (or a body where it takes none) — or a 2xx answer the
description does not declare or whose body its schema refuses, is a violation, and the
`github` fixture fails the test that caused it. Schemas are checked with `jsonschema`
(OpenAPI 3.0's `nullable` read as a `null` type); `$ref`s resolve inside the description.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from tests.readers import ReaderMissing, cache_root

OCTOKIT_OPENAPI = "23.0.2"  # npm @octokit/openapi: GitHub's description of api.github.com
METHODS = ("get", "put", "post", "patch", "delete")


def description_path() -> Path:
    """api.github.com.json of the pinned @octokit/openapi, installed with npm on first use."""
    home = cache_root() / "test-tools" / f"octokit-openapi-{OCTOKIT_OPENAPI}"
    spec = home / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
    if spec.is_file():
        return spec
    npm = shutil.which("npm")
    if npm is None:
        raise ReaderMissing("npm is needed for GitHub's OpenAPI description (apt-get install npm)")
    home.mkdir(parents=True, exist_ok=True)
    (home / "package.json").write_text('{"name": "octokit-openapi-cache", "private": true}\n')
    proc = subprocess.run(
        [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts",
         f"@octokit/openapi@{OCTOKIT_OPENAPI}"],
        cwd=home, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not spec.is_file():
        raise ReaderMissing(f"npm install @octokit/openapi failed:\n{proc.stderr[-2000:]}")
    return spec


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 `nullable: true` as JSON Schema's `null` type, everywhere."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items()}
    if out.pop("nullable", False):
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        elif "type" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class Route:
    template: str
    pattern: re.Pattern[str]
    literals: int


@dataclass
class Contract:
    """The description, its routes, and the violations found so far."""

    spec: dict[str, Any]
    routes: list[Route] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    checked: int = 0  # requests checked so far
    _root: dict[str, Any] = field(default_factory=dict, repr=False)
    _validators: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for template in self.spec["paths"]:
            regex = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            literals = sum(1 for part in template.split("/") if part and "{" not in part)
            self.routes.append(Route(template, re.compile(f"^{regex}$"), literals))

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = self._pointer(node["$ref"])
        return node

    def _pointer(self, ref: str) -> Any:
        node: Any = self.spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _schema_errors(self, schema: Any, value: Any) -> list[str]:
        """`value` against `schema`; its `$ref`s resolve inside the description."""
        from jsonschema import Draft7Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT7

        key = json.dumps(schema, sort_keys=True)
        validator = self._validators.get(key)
        if validator is None:
            if not self._root:
                self._root["components"] = _nullable(self.spec["components"])
            root = {**self._root, "$defs": {"it": _nullable(schema)}}
            resource = Resource(contents=root, specification=DRAFT7)
            registry: Registry[Any] = Registry().with_resource("urn:github-openapi", resource)
            validator = Draft7Validator({"$ref": "urn:github-openapi#/$defs/it"}, registry=registry)
            self._validators[key] = validator
        return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in validator.iter_errors(value)][:3]  # fmt: skip

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        found = [r for r in self.routes if r.pattern.match(path)]
        if not found:
            return None
        route = max(found, key=lambda r: r.literals)
        op = self.spec["paths"][route.template].get(method.lower())
        return (route.template, op) if op else (route.template, {})

    def check(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes,
        status: int, answer: Any,
    ) -> None:  # fmt: skip
        """Record every way this request, or its 2xx answer, breaks the description."""
        self.checked += 1
        where = f"{method} {path}"
        found = self.operation(method, path)
        if found is None:
            self.violations.append(f"{where}: no such path in GitHub's description")
            return
        template, op = found
        if not op:
            self.violations.append(f"{where}: {template} has no {method} operation")
            return
        self._check_query(where, op, self.spec["paths"][template], query)
        self._check_body(where, op, body)
        if 200 <= status < 300:
            self._check_answer(where, op, status, answer)

    def _check_query(
        self, where: str, op: dict[str, Any], item: dict[str, Any], query: dict[str, list[str]]
    ) -> None:
        params = [
            self._resolve(p) for p in [*item.get("parameters", []), *op.get("parameters", [])]
        ]
        declared = {p["name"]: p for p in params if p.get("in") == "query"}
        for name, values in query.items():
            param = declared.get(name)
            if param is None:
                self.violations.append(f"{where}: query parameter {name} is not declared")
                continue
            schema = _nullable(self._resolve(param.get("schema", {})))
            for text in values:
                value: Any = text
                if schema.get("type") == "integer":
                    try:
                        value = int(text)
                    except ValueError:
                        self.violations.append(f"{where}: {name}={text!r} is not an integer")
                        continue
                for error in self._schema_errors(schema, value):
                    self.violations.append(f"{where}: query {name}: {error}")
        for name, param in declared.items():
            if param.get("required") and name not in query:
                self.violations.append(f"{where}: required query parameter {name} missing")

    def _check_body(self, where: str, op: dict[str, Any], body: bytes) -> None:
        spec = self._resolve(op.get("requestBody"))
        if spec is None:
            if body.strip():
                self.violations.append(f"{where}: a body where the operation takes none")
            return
        if not body.strip():
            if spec.get("required"):
                self.violations.append(f"{where}: the required body is missing")
            return
        schema = spec.get("content", {}).get("application/json", {}).get("schema")
        try:
            doc = json.loads(body)
        except ValueError:
            self.violations.append(f"{where}: the body is not JSON")
            return
        for error in self._schema_errors(schema, doc):
            self.violations.append(f"{where}: body {error}")

    def _check_answer(self, where: str, op: dict[str, Any], status: int, answer: Any) -> None:
        response = self._resolve(op.get("responses", {}).get(str(status)))
        if response is None:
            self.violations.append(f"{where}: answer {status} is not declared")
            return
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:
            if answer not in (None, {}, b""):
                self.violations.append(f"{where}: answer {status} declares no body")
            return
        for error in self._schema_errors(schema, answer):
            self.violations.append(f"{where}: answer {status}: {error}")


@cache
def load() -> Contract:
    """The description, read once per test session."""
    return Contract(json.loads(description_path().read_text(encoding="utf-8")))
