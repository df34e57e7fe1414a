"""Argument parsing shared by the local and the cluster verbs: `-p KEY=VALUE` of `run` and `submit`."""

from __future__ import annotations

from dagwright.errors import Problem, SpecError


def parameters(pairs: list[str]) -> dict[str, str]:
    """`-p key=value` pairs, as a mapping; a pair without `=` or without a key is a SpecError naming `-p`."""
    parameters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SpecError([Problem("-p", f"expected KEY=VALUE, got {pair!r}")])
        parameters[key] = value
    return parameters
