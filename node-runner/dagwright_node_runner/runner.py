"""`dagwright-node-runner [--redis-url URL] -- COMMAND [ARGS...]`: the wrapper around a node's command.

Or `dagwright-node-runner --render-inputs`: the command is the node's templates in `$DAGWRIGHT_INPUTS`, which read
upstream outputs only Redis holds; node-runner fetches those outputs and renders the templates once, then runs the
result like any command (failures: 66 when an upstream's outputs are gone from Redis, 65 when a rendered value is
more than exec can pass, 86 when Redis is unreachable).

It gives the command the node I/O contract (`dagwright.nodeio`): a private `$DAGWRIGHT_OUTPUTS` file and
`$DAGWRIGHT_PROGRESS` file, forwards the latest progress line to Redis (throttled), and after the command
exits carries the outputs out through the termination message, storing them in Redis when configured. The
command's exit code is passed through; node-runner's own codes are 65 (outputs invalid or too large) and 86
(Redis unavailable: transient, the attempt is retried). Signals are forwarded to the command, so a stopped
attempt ends the command too.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from dagwright import nodeio
from dagwright_node_runner.errors import Failure, StoreUnavailable

if TYPE_CHECKING:
    from dagwright_node_runner.store import RedisStore

PROGRESS_INTERVAL = 1.0
OUTPUTS_TTL = 7 * 24 * 3600
INPUTS = "DAGWRIGHT_INPUTS"
MAX_ARG_STRLEN = 32 * 4096  # Linux: the longest single argument or NAME=value exec accepts, with its NUL


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if bool(command) == args.render_inputs:
        usage = "dagwright-node-runner -- COMMAND ... | dagwright-node-runner --render-inputs"
        print(f"dagwright-node-runner: give a command or --render-inputs, not both (usage: {usage})", file=sys.stderr)
        return 2
    termination = Path(args.termination_log)
    store = _store(args)
    if store is not None:
        try:
            store.check()
        except StoreUnavailable as error:
            return _fail(termination, "RunnerUnavailable", str(error), nodeio.EXIT_RUNNER_UNAVAILABLE)
    identity = _Identity.from_env()
    env: dict[str, str] = {}
    if args.render_inputs:
        try:
            command, env = _render_inputs(store, identity)
        except Failure as failure:
            return _fail(termination, failure.reason, failure.message, failure.code)
    with tempfile.TemporaryDirectory(prefix="dagwright-") as scratch:
        outputs_path = Path(scratch) / "outputs.json"
        progress_path = Path(scratch) / "progress"
        code = _run(command, env, outputs_path, progress_path, store, identity)
        if code != 0:
            return code  # an empty termination file lets the kubelet fall back to the log tail
        return _carry_outputs(outputs_path, termination, store, identity, args.outputs_ttl)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dagwright-node-runner", description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default=os.environ.get("DAGWRIGHT_REDIS_URL"))
    parser.add_argument("--outputs-ttl", type=int, default=OUTPUTS_TTL, help="seconds outputs stay in Redis")
    parser.add_argument(
        "--render-inputs", action="store_true", help=f"run the node's templates in ${INPUTS}, rendered with Redis"
    )
    parser.add_argument(
        "--termination-log", default=os.environ.get("DAGWRIGHT_TERMINATION_LOG", nodeio.TERMINATION_LOG)
    )
    parser.add_argument("command", nargs=argparse.REMAINDER)
    return parser


class _Identity:
    def __init__(self, workflow_uid: str, node: str, attempt: str) -> None:
        self.workflow_uid, self.node, self.attempt = workflow_uid, node, attempt

    @classmethod
    def from_env(cls) -> _Identity:
        env = os.environ
        return cls(
            env.get("DAGWRIGHT_WORKFLOW_UID", "local"),
            env.get("DAGWRIGHT_NODE", "node"),
            env.get("DAGWRIGHT_ATTEMPT", "1"),
        )


def _store(args: argparse.Namespace) -> RedisStore | None:
    if not args.redis_url:
        return None
    from dagwright_node_runner.store import RedisStore  # redis costs ~150 ms to import: only when used

    return RedisStore(
        args.redis_url,
        password=os.environ.get("DAGWRIGHT_REDIS_PASSWORD"),
        ca_file=os.environ.get("DAGWRIGHT_REDIS_CA"),
    )


def _render_inputs(store: RedisStore | None, identity: _Identity) -> tuple[list[str], dict[str, str]]:
    """The command line and the env variables rendered from `$DAGWRIGHT_INPUTS` and the outputs they read."""
    try:
        inputs = nodeio.Inputs.from_json(os.environ.get(INPUTS, ""))
    except ValueError as error:
        raise Failure("InvalidInputs", f"${INPUTS} is unreadable: {error}", nodeio.EXIT_INVALID_INPUTS) from None
    fetched = {node: _fetch(store, node, key) for node, key in inputs.outputs}
    command, args, env = inputs.render(fetched)
    fields = [(f"command[{i}]", v) for i, v in enumerate(command)] + [(f"args[{i}]", v) for i, v in enumerate(args)]
    _check_exec_limits(identity.node, [*fields, *((f"env {name}", f"{name}={v}") for name, v in env.items())])
    return [*command, *args], env


def _fetch(store: RedisStore | None, node: str, key: str) -> dict[str, object]:
    if store is None:
        problem = f"the outputs of node {node} are in Redis, and node-runner has no Redis URL (DAGWRIGHT_REDIS_URL)"
        raise Failure("InputsUnavailable", problem, nodeio.EXIT_INPUTS_UNAVAILABLE)
    try:
        text = store.get_outputs(key)
    except StoreUnavailable as error:
        raise Failure("RunnerUnavailable", str(error), nodeio.EXIT_RUNNER_UNAVAILABLE) from None
    if text is None:
        problem = f"the outputs of node {node} are no longer in Redis (key {key}): they expired or Redis lost them"
        raise Failure("InputsUnavailable", problem, nodeio.EXIT_INPUTS_UNAVAILABLE)
    outputs, _ = nodeio.parse_outputs(text, nodeio.REDIS_LIMIT)
    if outputs is None:
        problem = f"the outputs of node {node} in Redis (key {key}) are not a JSON object"
        raise Failure("InputsUnavailable", problem, nodeio.EXIT_INPUTS_UNAVAILABLE)
    return outputs


def _check_exec_limits(node: str, fields: list[tuple[str, str]]) -> None:
    """Fail with the field's name rather than exec's bare OSError, ValueError or UnicodeEncodeError."""
    for field, value in fields:
        try:
            size = len(os.fsencode(value)) + 1
        except UnicodeEncodeError:
            size = -1
        if size < 0 or "\0" in value:
            problem = f"node {node}: {field} holds a NUL or unencodable character once rendered; exec cannot pass it"
            raise Failure("InvalidInputs", problem, nodeio.EXIT_INVALID_INPUTS)
        if size > MAX_ARG_STRLEN:
            problem = (
                f"node {node}: {field} is {size - 1} bytes once rendered; Linux passes at most {MAX_ARG_STRLEN - 1} "
                "bytes per argument or environment variable (MAX_ARG_STRLEN)"
            )
            raise Failure("InputsTooLarge", problem, nodeio.EXIT_INVALID_INPUTS)


def _run(
    command: list[str],
    extra_env: dict[str, str],
    outputs: Path,
    progress: Path,
    store: RedisStore | None,
    identity: _Identity,
) -> int:
    env = {**os.environ, **extra_env, "DAGWRIGHT_OUTPUTS": str(outputs), "DAGWRIGHT_PROGRESS": str(progress)}
    env.pop(INPUTS, None)  # the command gets the rendered values, not node-runner's instructions
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as error:
        print(f"dagwright-node-runner: cannot start {command[0]!r}: {error.strerror or error}", file=sys.stderr)
        return 127
    forwarded = {sig: signal.signal(sig, _forward(child)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _follow_progress(child, progress, store, identity)
        return child.wait()
    finally:
        for sig, handler in forwarded.items():
            signal.signal(sig, handler)


def _forward(child: subprocess.Popen[bytes]) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signum)

    return handler


def _follow_progress(
    child: subprocess.Popen[bytes], progress: Path, store: RedisStore | None, identity: _Identity
) -> None:
    """Publish the latest progress line at most once per interval, while the command runs."""
    last = None
    poll = 0.05
    next_send = 0.0
    while True:
        try:
            child.wait(timeout=poll)  # returns as soon as the command exits
            return
        except subprocess.TimeoutExpired:
            poll = min(poll * 2, 0.25)
        if store is None or time.monotonic() < next_send:
            continue
        line = _last_line(progress)
        if line is not None and line != last:
            message = {"node": identity.node, "attempt": int(identity.attempt), "progress": line}
            store.publish(nodeio.progress_channel(identity.workflow_uid), json.dumps(message))
            last = line
            next_send = time.monotonic() + PROGRESS_INTERVAL


def _carry_outputs(
    outputs_path: Path, termination: Path, store: RedisStore | None, identity: _Identity, ttl: int
) -> int:
    try:
        text = outputs_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError) as error:
        return _fail(
            termination, "InvalidOutputs", f"cannot read $DAGWRIGHT_OUTPUTS: {error}", nodeio.EXIT_INVALID_OUTPUTS
        )
    limit = nodeio.REDIS_LIMIT if store is not None else nodeio.TERMINATION_LIMIT
    outputs, problem = nodeio.parse_outputs(text, limit)
    if problem is not None:
        return _fail(termination, problem[0], problem[1], nodeio.EXIT_INVALID_OUTPUTS)
    if outputs is None:
        return 0
    if store is None:
        _write(termination, nodeio.envelope(outputs=outputs))
        return 0
    encoded = json.dumps(outputs, separators=(",", ":"))
    key = nodeio.outputs_key(identity.workflow_uid, identity.node)
    try:
        store.put_outputs(key, encoded, ttl)
    except StoreUnavailable as error:
        return _fail(termination, "RunnerUnavailable", str(error), nodeio.EXIT_RUNNER_UNAVAILABLE)
    small = len(encoded.encode()) <= nodeio.TERMINATION_LIMIT
    _write(termination, nodeio.envelope(outputs=outputs if small else None, reference=key))
    return 0


def _fail(termination: Path, reason: str, message: str, code: int) -> int:
    print(f"dagwright-node-runner: {message}", file=sys.stderr)
    _write(termination, nodeio.envelope(error=(reason, message[:1000])))
    return code


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        print(f"dagwright-node-runner: cannot write the termination message {path}: {error}", file=sys.stderr)


def _last_line(path: Path) -> str | None:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 256))
            lines = handle.read().decode("utf-8", "replace").split()
    except FileNotFoundError:
        return None
    return lines[-1] if lines else None
