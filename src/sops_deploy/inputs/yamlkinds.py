"""The kinds of a sops-deploy.yaml node: the YAML tags a scalar may carry, how a node is
named in an error, what each option kind must be and an example of it (`configfile.py`)."""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node, SequenceNode

from sops_deploy.inputs.table import Option

INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
STR = "tag:yaml.org,2002:str"


def type_name(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return {
        INT: "a number",
        FLOAT: "a number",
        BOOL: "a boolean",
        "tag:yaml.org,2002:null": "empty",
    }.get(node.tag, "a string")


WANT = {
    "str": "a string",
    "list": "a list of strings",
    "int": "a whole number",
    "number": "a number",
    "bool": "true or false",
    "mode": "an octal mode",
}
EXAMPLE = {
    "str": '"..."',
    "list": "[a, b]",
    "int": "8",
    "number": "20",
    "bool": "true",
    "mode": '"0600"',
}


def typed(field: Option, text: str) -> Any:
    if field.kind == "int":
        return int(text)
    if field.kind == "number":
        return float(text)
    if field.kind == "bool":
        return text.lower() in ("true", "yes", "on", "y")
    return text
