"""The GraphQL examples of README.md and docs/api.md, read the way the tests run and check them.

A fenced block belongs to the `##` section and the `###` heading above it. In docs/api.md a block whose
fence follows the line `Example (ROLE):` is runnable: the tests send it as ROLE (anonymous, customer or
admin), with ids of entities they made, and compare the answer with the documented one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphql import DocumentNode, FieldNode, OperationDefinitionNode, parse

from tests.conftest import ROOT

README = ROOT / "README.md"
API_DOC = ROOT / "docs" / "api.md"
ROLES = ("anonymous", "customer", "admin")
_MARKER = re.compile(r"Example \((\w+)\):")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a Markdown file."""

    lang: str
    text: str
    line: int  # of the opening fence, from 1
    section: str  # title of the `##` heading above it
    heading: str  # title of the `###` heading above it in that section, backticks dropped; "" if none
    role: str | None  # ROLE of an `Example (ROLE):` line right above the fence

    @property
    def where(self) -> str:
        return f"line {self.line} ({self.heading or self.section})"


def read_blocks(path: Path) -> list[Block]:
    """Return every fenced block of the Markdown file at `path`, in order."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    section = heading = previous = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            marker = _MARKER.fullmatch(previous.strip())
            text = "\n".join(lines[index + 1 : end])
            lang = line[3:].strip().split(" ")[0]
            found.append(Block(lang, text, index + 1, section, heading, marker and marker.group(1)))
            previous, index = "", end + 1
            continue
        if line.startswith("## "):
            section, heading = line[3:].strip(), ""
        elif line.startswith("### "):
            heading = line[4:].strip().replace("`", "")
        if line.strip():
            previous = line
        index += 1
    return found


@dataclass(frozen=True)
class Example:
    """A runnable ```graphql block, with the ```json blocks after it: its variables and its answer."""

    block: Block
    variables: dict[str, Any] | None  # as documented; the tests send ids of their own
    response: dict[str, Any] | None  # the documented answer: {"data": ...}

    @property
    def role(self) -> str:
        assert self.block.role is not None
        return self.block.role

    @property
    def kind(self) -> str:
        return operation(self.block.text).operation.value

    @property
    def fields(self) -> list[str]:
        return [field.name.value for field in root_fields(self.block.text)]

    @property
    def declared(self) -> list[str]:
        """The names of the variables the operation declares."""
        return [v.variable.name.value for v in operation(self.block.text).variable_definitions or ()]


def examples(path: Path) -> list[Example]:
    """The runnable examples of a Markdown file, in order."""
    blocks = read_blocks(path)
    found = []
    for index, block in enumerate(blocks):
        if block.lang != "graphql" or block.role is None:
            continue
        following = []
        for after in blocks[index + 1 :]:
            if after.lang != "json" or after.heading != block.heading or after.section != block.section:
                break
            following.append(json.loads(after.text))
        answers = [f for f in following if isinstance(f, dict) and "data" in f]
        variables = [f for f in following if f not in answers]
        found.append(Example(block, variables[0] if variables else None, answers[0] if answers else None))
    return found


def operation(text: str) -> OperationDefinitionNode:
    """The one operation of a document."""
    document: DocumentNode = parse(text)
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    assert len(operations) == 1, f"one operation per example: {text[:80]!r}"
    return operations[0]


def root_fields(text: str) -> list[FieldNode]:
    """The fields an operation selects on its root type."""
    return [s for s in operation(text).selection_set.selections if isinstance(s, FieldNode)]


def user_errors(value: Any) -> list[dict[str, Any]]:
    """Every typed error (a UserError member: `code` and `message`) anywhere in a response's data."""
    if isinstance(value, list):
        return [error for item in value for error in user_errors(item)]
    if not isinstance(value, dict):
        return []
    if "code" in value and "message" in value:
        return [value]
    return [error for item in value.values() for error in user_errors(item)]


def shape_differences(documented: Any, actual: Any, path: str = "data") -> list[str]:
    """Where the actual answer's keys differ from the documented one's (lists: by their first item)."""
    if isinstance(documented, dict) and isinstance(actual, dict):
        if documented.keys() != actual.keys():
            return [f"{path}: documented {sorted(documented)}, answered {sorted(actual)}"]
        return [
            d for key in documented for d in shape_differences(documented[key], actual[key], f"{path}.{key}")
        ]
    if isinstance(documented, list) and isinstance(actual, list) and documented and actual:
        return shape_differences(documented[0], actual[0], f"{path}[0]")
    return []


def compact(value: Any) -> str:
    """`value` as the JSON a failure message shows."""
    return json.dumps(value, indent=2, ensure_ascii=False)
