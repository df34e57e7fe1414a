"""Errors a user can cause, reported as one line per problem that names the field.

Every entry point (CLI, operator, webhook) catches `SpecError` and shows `str(error)`: never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    field: str  # a path such as `spec.nodes[2].retry.limit`
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SpecError(ValueError):
    """A manifest that cannot run, with every problem found (not just the first)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(problem) for problem in problems))
