"""Reading manifest files: YAML (or JSON) text to a plain object, with errors that say where.

YAML 1.1, which PyYAML follows, reads `on`, `off`, `yes` and `no` as booleans, so a key `on:` would silently
become `true:`. The loader here follows YAML 1.2 for booleans (only true/false), which is what a user writing the
manifest means. kubectl's YAML reader still follows 1.1, which is why the retry policy's key is `retry.policy`
(it was `retry.on`): no manifest needs quoting. One still using `on` (or kubectl's `true` made of it) is refused
with an error naming `retry.policy` (`validation.py`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dagwright.errors import Problem, SpecError

# libyaml's parser when PyYAML has it: five times faster on a 1,000-node manifest, same resolvers (below).
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_SafeLoader):  # type: ignore[valid-type,misc]
    pass


# Dates stay strings too, as they do through kubectl: `date: 2026-11-25` is a string parameter.
_DROPPED_TAGS = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp"}


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def parse(text: str, source: str = "<manifest>") -> Any:
    """The one document of a manifest (a Workflow)."""
    documents = parse_all(text, source)
    if len(documents) != 1:
        raise SpecError([Problem(source, f"expected one Workflow document, found {len(documents)}")])
    return documents[0]


def parse_all(text: str, source: str = "<manifest>") -> list[Any]:
    """Every document of a manifest (a WorkflowTemplate and a Workflow running it, say), empty ones left out."""
    try:
        return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = getattr(error, "problem", None) or str(error)
        raise SpecError([Problem(where, f"invalid YAML: {problem}")]) from None


def load(path: str | Path) -> Any:
    return parse(read(path), str(path))


def load_all(path: str | Path) -> list[Any]:
    return parse_all(read(path), str(path))


def read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError([Problem(str(path), f"cannot read the file: {error.strerror or error}")]) from None
    except UnicodeDecodeError:
        raise SpecError([Problem(str(path), "the file is not UTF-8 text")]) from None
