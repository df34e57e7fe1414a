"""The node I/O contract shared by node-runner, the operator and the local runner.

A node's command
- writes a JSON object to the file named by `$DAGWRIGHT_OUTPUTS` (no file: no outputs);
- may write lines like `42` (percent) or `42/100` to `$DAGWRIGHT_PROGRESS`; the latest line counts;
- keeps its exit code's meaning.

In a pod the outputs travel in the container's termination message: either the command's own JSON object (a
plain image: `$DAGWRIGHT_OUTPUTS` is `/dev/termination-log`), or an envelope written by node-runner,
`{"dagwright/v1": {...}}`, which can also point to outputs stored in Redis or report node-runner's own failure.
The kubelet keeps at most 4 KiB of a termination message, so outputs carried there are limited to 3 KiB; Redis
takes up to 1 MiB per node.

Outputs held only in Redis cannot be rendered by the operator, which never reads Redis: a downstream node reading
them gets its unrendered templates as `Inputs` (`$DAGWRIGHT_INPUTS`), and node-runner fetches the outputs and
renders them in the pod, once, with the same `dagwright.templates.render`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dagwright import templates

ENVELOPE = "dagwright/v1"
TERMINATION_LIMIT = 3 * 1024
REDIS_LIMIT = 1024 * 1024
TERMINATION_LOG = "/dev/termination-log"

# node-runner's own exit codes (the command's exit codes pass through unchanged).
EXIT_INVALID_OUTPUTS = 65  # EX_DATAERR: outputs are not a JSON object, or too large
EXIT_INVALID_INPUTS = 65  # EX_DATAERR too: a rendered value exec cannot pass, or $DAGWRIGHT_INPUTS unreadable
EXIT_INPUTS_UNAVAILABLE = 66  # EX_NOINPUT: an upstream node's outputs are no longer in Redis
EXIT_RUNNER_UNAVAILABLE = 86  # node-runner could not reach its infrastructure (Redis): transient

_PROGRESS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+(?:\.\d+)?))?\s*$")


@dataclass(frozen=True, slots=True)
class Carried:
    """What a termination message says about an attempt's outputs."""

    outputs: dict[str, Any] | None = None
    reference: str | None = None  # a Redis key holding the full outputs
    error_reason: str | None = None  # node-runner's own failure: InvalidOutputs, OutputsTooLarge, RunnerUnavailable
    error_message: str | None = None


def envelope(
    outputs: dict[str, Any] | None = None, reference: str | None = None, error: tuple[str, str] | None = None
) -> str:
    body: dict[str, Any] = {}
    if outputs is not None:
        body["outputs"] = outputs
    if reference is not None:
        body["ref"] = reference
    if error is not None:
        body["error"] = {"reason": error[0], "message": error[1]}
    return json.dumps({ENVELOPE: body}, separators=(",", ":"))


def read_termination(message: str | None, succeeded: bool) -> Carried:
    """Interpret a termination message. On failure a non-envelope message is just the error text."""
    text = (message or "").strip()
    if not text:
        return Carried()
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if isinstance(value, dict) and isinstance(value.get(ENVELOPE), dict):
        body = value[ENVELOPE]
        error = body.get("error") or {}
        outputs = body.get("outputs")
        return Carried(
            outputs=outputs if isinstance(outputs, dict) else None,
            reference=body.get("ref") if isinstance(body.get("ref"), str) else None,
            error_reason=error.get("reason"),
            error_message=error.get("message"),
        )
    if not succeeded:
        return Carried()
    if isinstance(value, dict):
        return Carried(outputs=value)
    if len(text) >= 4000:
        problem = (
            f"outputs are larger than the {TERMINATION_LIMIT // 1024} KiB a termination message carries; "
            "configure Redis (the operator's --redis-url) for outputs up to 1 MiB"
        )
        return Carried(error_reason="OutputsTooLarge", error_message=problem)
    return Carried(error_reason="InvalidOutputs", error_message="$DAGWRIGHT_OUTPUTS must hold a JSON object")


def parse_outputs(text: str, limit: int) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """(outputs, None) or (None, (reason, message)) for the text a command wrote to $DAGWRIGHT_OUTPUTS."""
    size = len(text.encode())
    if size > limit:
        return None, _too_large(size, limit)
    if not text.strip():
        return None, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        return None, ("InvalidOutputs", f"$DAGWRIGHT_OUTPUTS is not valid JSON: {error}")
    if not isinstance(value, dict):
        return None, ("InvalidOutputs", "$DAGWRIGHT_OUTPUTS must hold a JSON object")
    return value, None


def read_outputs_file(path: str, limit: int = REDIS_LIMIT) -> tuple[dict[str, Any] | None, tuple[str, str] | None]:
    """`parse_outputs` for a file (the local runner's `$DAGWRIGHT_OUTPUTS`): no file, or an empty one, is no
    outputs. At most `limit + 1` bytes are read, so a runaway file is reported as too large, not loaded whole.
    The default limit is the largest any backend accepts (node-runner's with Redis)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
            size = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, ("InvalidOutputs", f"cannot read outputs file $DAGWRIGHT_OUTPUTS: {error.strerror or error}")
    if len(data) > limit:
        return None, _too_large(max(size, len(data)), limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, ("InvalidOutputs", f"$DAGWRIGHT_OUTPUTS is not UTF-8 text: {error}")
    return parse_outputs(text, limit)


def _too_large(size: int, limit: int) -> tuple[str, str]:
    where = "Redis" if limit >= REDIS_LIMIT else "the termination message (configure Redis for up to 1 MiB)"
    return "OutputsTooLarge", f"outputs are {size} bytes; the limit in {where} is {limit}"


def progress_fraction(text: str | None) -> float | None:
    """`42` is 42 %, `42/100` is 42 of 100; anything else is unknown."""
    match = _PROGRESS.match(text or "")
    if match is None:
        return None
    done, total = float(match.group(1)), match.group(2)
    fraction = done / float(total) if total is not None and float(total) > 0 else done / 100
    return max(0.0, min(1.0, fraction))


@dataclass(frozen=True, slots=True)
class Inputs:
    """A node's templates for node-runner to render, because outputs they read are held only in Redis.

    `values` holds every other reference those templates use, already resolved by the planner; `outputs` maps
    each upstream node whose outputs node-runner must fetch to their Redis key. `env` holds only the variables
    that read such outputs; the rest are rendered by the planner as usual.
    """

    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    values: tuple[tuple[str, str], ...]
    outputs: tuple[tuple[str, str], ...]

    def render(self, fetched: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[str], dict[str, str]]:
        """(command, args, env) with `fetched` (upstream node -> its outputs) and `values`: one pass over the
        original templates, so a value containing `{{ ... }}` arrives literally."""
        context = dict(self.values)
        for node, outputs in fetched.items():
            context.update(templates.outputs_context(node, outputs))
        command = [templates.render(value, context) for value in self.command]
        args = [templates.render(value, context) for value in self.args]
        return command, args, {name: templates.render(value, context) for name, value in self.env}

    def to_json(self) -> str:
        body = {
            "command": list(self.command),
            "args": list(self.args),
            "env": dict(self.env),
            "values": dict(self.values),
            "outputs": dict(self.outputs),
        }
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Inputs:
        """The inverse of `to_json`; ValueError names the field that is wrong."""
        try:
            body = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not valid JSON: {error}") from None
        if not isinstance(body, dict):
            raise ValueError("not a JSON object")
        return cls(
            command=_strings(body, "command"),
            args=_strings(body, "args"),
            env=_pairs(body, "env"),
            values=_pairs(body, "values"),
            outputs=_pairs(body, "outputs"),
        )


def _strings(body: dict[str, Any], field: str) -> tuple[str, ...]:
    value = body.get(field, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"'{field}' must be a list of strings")
    return tuple(value)


def _pairs(body: dict[str, Any], field: str) -> tuple[tuple[str, str], ...]:
    value = body.get(field, {})
    if not isinstance(value, dict) or not all(isinstance(item, str) for item in value.values()):
        raise ValueError(f"'{field}' must map names to strings")
    return tuple(value.items())


def outputs_key(workflow_uid: str, node: str) -> str:
    return f"dagwright:{workflow_uid}:{node}:outputs"


def progress_channel(workflow_uid: str) -> str:
    return f"dagwright:{workflow_uid}:progress"


def untrusted_certificate(error: BaseException) -> str | None:
    """Why Redis' TLS certificate failed verification, if that is what `error` is (redis-py wraps the ssl error):
    no retry can fix it, so node-runner and the operator say so at once. Shared by both."""
    import ssl  # only where Redis is in use: node-runner without Redis does not pay for it

    cause = error.__cause__ or error.__context__
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause.verify_message or str(cause)
        cause = cause.__cause__ or cause.__context__
    return None
