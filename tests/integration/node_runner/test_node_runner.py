"""node-runner as a process around real commands, with and without a real Redis."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dagwright import nodeio
from dagwright.k8s import admission
from dagwright.k8s.progress import ProgressFeed

from .conftest import RedisServer

RUNNER = [sys.executable, "-m", "dagwright_node_runner"]


def run_node(
    tmp_path: Path, script: str, *extra: str, env: dict[str, str] | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Run `sh -c script` under node-runner; returns (exit code, termination message, stderr)."""
    termination = tmp_path / "termination-log"
    environment = {
        **os.environ,
        "DAGWRIGHT_TERMINATION_LOG": str(termination),
        "DAGWRIGHT_WORKFLOW_UID": "uid-1",
        "DAGWRIGHT_NODE": "extract",
        "DAGWRIGHT_ATTEMPT": "1",
        **(env or {}),
    }
    done = subprocess.run(
        [*RUNNER, *extra, "--", "sh", "-c", script], env=environment, capture_output=True, text=True, timeout=timeout
    )
    message = termination.read_text() if termination.exists() else ""
    return done.returncode, message, done.stderr


def test_outputs_travel_in_the_termination_message_without_redis(tmp_path: Path) -> None:
    code, message, _ = run_node(tmp_path, 'echo \'{"rows": 42, "key": "s3://bucket/day"}\' > "$DAGWRIGHT_OUTPUTS"')
    assert code == 0
    carried = nodeio.read_termination(message, succeeded=True)
    assert carried.outputs == {"rows": 42, "key": "s3://bucket/day"}


def test_no_outputs_file_means_no_outputs_and_exit_codes_pass_through(tmp_path: Path) -> None:
    assert run_node(tmp_path, "true")[:2] == (0, "")
    code, message, _ = run_node(tmp_path, "exit 3")
    assert (code, message) == (3, "")  # empty: the kubelet falls back to the log tail


def test_invalid_outputs_fail_the_attempt_with_a_clear_reason(tmp_path: Path) -> None:
    code, message, stderr = run_node(tmp_path, 'echo "not json" > "$DAGWRIGHT_OUTPUTS"')
    assert code == nodeio.EXIT_INVALID_OUTPUTS
    carried = nodeio.read_termination(message, succeeded=False)
    assert carried.error_reason == "InvalidOutputs"
    assert "not valid JSON" in stderr


def test_outputs_over_3_kib_without_redis_name_the_limit_and_the_redis_setting(tmp_path: Path) -> None:
    script = "python3 -c \"import json; print(json.dumps({'blob': 'x' * 5000}))\" > \"$DAGWRIGHT_OUTPUTS\""
    code, message, _ = run_node(tmp_path, script)
    carried = nodeio.read_termination(message, succeeded=False)
    assert code == nodeio.EXIT_INVALID_OUTPUTS and carried.error_reason == "OutputsTooLarge"
    assert carried.error_message is not None and "3072" in carried.error_message and "Redis" in carried.error_message


def test_with_redis_outputs_are_stored_with_a_ttl_and_small_ones_mirrored(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    code, message, _ = run_node(
        tmp_path, 'echo \'{"rows": 7}\' > "$DAGWRIGHT_OUTPUTS"', "--redis-url", redis_server.url, "--outputs-ttl", "600"
    )
    assert code == 0
    carried = nodeio.read_termination(message, succeeded=True)
    key = nodeio.outputs_key("uid-1", "extract")
    assert carried.outputs == {"rows": 7} and carried.reference == key
    client = redis_server.client()
    assert json.loads(client.get(key) or b"null") == {"rows": 7}
    assert 0 < client.ttl(key) <= 600


def test_with_redis_large_outputs_up_to_1_mib_are_stored_but_not_mirrored(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    script = "python3 -c \"import json; print(json.dumps({'blob': 'x' * 500000}))\" > \"$DAGWRIGHT_OUTPUTS\""
    code, message, _ = run_node(tmp_path, script, "--redis-url", redis_server.url)
    assert code == 0
    carried = nodeio.read_termination(message, succeeded=True)
    assert carried.outputs is None and carried.reference is not None
    stored = json.loads(redis_server.client().get(carried.reference) or b"{}")
    assert len(stored["blob"]) == 500000
    assert len(message) < 1024  # the termination message stays small


def test_progress_lines_are_published_on_the_workflows_channel(tmp_path: Path, redis_server: RedisServer) -> None:
    pubsub = redis_server.client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(nodeio.progress_channel("uid-1"))
    script = 'for i in 10 50 90; do echo "$i/100" >> "$DAGWRIGHT_PROGRESS"; sleep 1.2; done'
    code, _, _ = run_node(tmp_path, script, "--redis-url", redis_server.url)
    assert code == 0
    seen = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(seen) < 3:
        message = pubsub.get_message(timeout=0.5)
        if message:
            seen.append(json.loads(message["data"]))
    assert [m["progress"] for m in seen] == ["10/100", "50/100", "90/100"]
    assert all(m["node"] == "extract" and m["attempt"] == 1 for m in seen)


def test_redis_unreachable_exits_with_the_transient_code_before_running_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    code, message, stderr = run_node(tmp_path, f"touch {marker}", "--redis-url", "redis://127.0.0.1:1/0")
    assert code == nodeio.EXIT_RUNNER_UNAVAILABLE
    assert nodeio.read_termination(message, succeeded=False).error_reason == "RunnerUnavailable"
    assert not marker.exists()
    assert "unreachable" in stderr


def test_redis_with_a_password_works_and_without_it_fails_with_a_clear_message(
    tmp_path: Path, redis_with_password: RedisServer
) -> None:
    url = redis_with_password.url
    code, message, stderr = run_node(tmp_path, "true", "--redis-url", url)
    assert code == nodeio.EXIT_RUNNER_UNAVAILABLE
    assert "password" in stderr.lower()
    env = {"DAGWRIGHT_REDIS_PASSWORD": "s3cret-for-tests"}
    code, message, _ = run_node(tmp_path, 'echo \'{"ok": true}\' > "$DAGWRIGHT_OUTPUTS"', "--redis-url", url, env=env)
    assert code == 0 and nodeio.read_termination(message, succeeded=True).outputs == {"ok": True}


def test_redis_restarted_while_a_node_runs_loses_nothing(tmp_path: Path, redis_server: RedisServer) -> None:
    """Redis goes away mid-run and comes back (with its append-only file): the write is retried and kept."""
    first = run_node(tmp_path, 'echo \'{"n": 1}\' > "$DAGWRIGHT_OUTPUTS"', "--redis-url", redis_server.url)
    assert first[0] == 0

    def restart() -> None:
        time.sleep(0.5)
        redis_server.stop()
        time.sleep(1.0)
        redis_server.start()

    restarter = threading.Thread(target=restart)
    restarter.start()
    script = 'sleep 1; echo \'{"n": 2}\' > "$DAGWRIGHT_OUTPUTS"'
    env = {"DAGWRIGHT_NODE": "load"}
    code, message, _ = run_node(tmp_path, script, "--redis-url", redis_server.url, env=env)
    restarter.join()
    assert code == 0, message
    client = redis_server.client()
    assert json.loads(client.get(nodeio.outputs_key("uid-1", "extract")) or b"null") == {"n": 1}
    assert json.loads(client.get(nodeio.outputs_key("uid-1", "load")) or b"null") == {"n": 2}


def test_operator_progress_feed_keeps_the_latest_line_and_throttles_wakeups() -> None:
    wakes: list[tuple[str, float]] = []
    feed = ProgressFeed("redis://127.0.0.1:1/0", None, lambda uid, delay: wakes.append((uid, delay)))
    for line in ["1/10", "2/10", "3/10"]:
        feed.record("dagwright:uid-9:progress", json.dumps({"node": "a", "attempt": 2, "progress": line}))
    assert feed.latest("uid-9", "a", 2) == "3/10"
    assert feed.latest("uid-9", "a", 1) is None
    assert wakes[0] == ("uid-9", 0.0)
    assert all(delay > 1.0 for _, delay in wakes[1:])  # later lines wait out the 2 s patch interval
    feed.record("dagwright:uid-9:progress", "garbage")
    assert feed.latest("uid-9", "a", 2) == "3/10"


@pytest.mark.parametrize(("text", "fraction"), [("42", 0.42), ("42/100", 0.42), ("3/4", 0.75), ("x", None)])
def test_progress_lines_mean_percent_or_done_of_total(text: str, fraction: float | None) -> None:
    assert nodeio.progress_fraction(text) == fraction


def test_operator_progress_feed_hears_node_runner_over_a_real_redis(redis_server: RedisServer) -> None:
    woken: list[str] = []
    feed = ProgressFeed(redis_server.url, None, lambda uid, delay: woken.append(uid))
    feed.start()
    client = redis_server.client()
    message = json.dumps({"node": "extract", "attempt": 1, "progress": "7/10"})
    deadline = time.monotonic() + 10
    while feed.latest("uid-1", "extract", 1) is None and time.monotonic() < deadline:
        client.publish(nodeio.progress_channel("uid-1"), message)  # until the subscription is in place
        time.sleep(0.1)
    assert feed.latest("uid-1", "extract", 1) == "7/10"
    assert "uid-1" in woken
    feed.stop()
    assert not any(thread.name == "progress-feed" and thread.is_alive() for thread in threading.enumerate())


def test_operator_progress_feed_hears_node_runner_over_tls_with_the_ca(tmp_path: Path, redis_tls: RedisServer) -> None:
    woken: list[str] = []
    feed = ProgressFeed(redis_tls.url, None, lambda uid, delay: woken.append(uid), ca_file=str(redis_tls.ca))
    feed.start()
    # node-runner forwards the latest line while the command runs; the loop outlasts the feed's subscribing.
    script = 'for i in $(seq 1 50); do echo "$i/50" >> "$DAGWRIGHT_PROGRESS"; sleep 0.1; done'
    env = {"DAGWRIGHT_REDIS_CA": str(redis_tls.ca)}
    code, _, stderr = run_node(tmp_path, script, "--redis-url", redis_tls.url, env=env)
    assert code == 0, stderr
    feed.stop()
    heard = feed.latest("uid-1", "extract", 1)
    assert heard is not None and heard.endswith("/50") and int(heard.split("/")[0]) > 1
    assert "uid-1" in woken


def test_operator_progress_feed_without_the_ca_says_so_in_one_line_and_no_traceback(
    redis_tls: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="dagwright.progress"):
        feed = ProgressFeed(redis_tls.url, None, lambda uid, delay: None)
        feed.start()
        here = f"127.0.0.1:{redis_tls.port}"
        deadline = time.monotonic() + 20  # three tries take 1.5 s of backoff, plus the handshakes
        while time.monotonic() < deadline:
            tries = [r for r in caplog.records if r.name == "dagwright.progress" and here in r.getMessage()]
            if len(tries) >= 3:
                break
            time.sleep(0.2)
        feed.stop()
    tries = [r for r in caplog.records if r.name == "dagwright.progress" and here in r.getMessage()]
    told = [r for r in tries if r.levelno >= logging.WARNING]
    assert len(tries) >= 3, [r.getMessage() for r in tries]  # it kept trying...
    assert len(told) == 1, [r.getMessage() for r in told]  # ...and said so once
    (line,) = told
    assert "not trusted" in line.getMessage() and "DAGWRIGHT_REDIS_CA" in line.getMessage()
    assert "\n" not in line.getMessage() and line.exc_info is None


def test_operator_progress_feed_recovers_when_the_mounted_ca_file_is_corrected(
    tmp_path: Path, redis_tls: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The kubelet rewrites a mounted ConfigMap in place: a fixed CA must not need an operator restart."""
    assert redis_tls.ca is not None
    ca_file = tmp_path / "mounted-ca.crt"
    ca_file.write_bytes(admission.self_signed(["127.0.0.1"])[0])  # a CA that did not sign Redis' certificate
    feed = ProgressFeed(redis_tls.url, None, lambda uid, delay: None, ca_file=str(ca_file))
    with caplog.at_level(logging.INFO, logger="dagwright.progress"):
        feed.start()
        time.sleep(1)
        ca_file.write_bytes(redis_tls.ca.read_bytes())
        client = redis_tls.client()
        message = json.dumps({"node": "extract", "attempt": 1, "progress": "3/4"})
        deadline = time.monotonic() + 15
        while feed.latest("uid-1", "extract", 1) is None and time.monotonic() < deadline:
            client.publish(nodeio.progress_channel("uid-1"), message)
            time.sleep(0.2)
        feed.stop()
    assert feed.latest("uid-1", "extract", 1) == "3/4"
    here = f"127.0.0.1:{redis_tls.port}"
    said = [r.getMessage() for r in caplog.records if r.name == "dagwright.progress" and here in r.getMessage()]
    assert len(said) == 2 and "not trusted" in said[0] and "trusted now" in said[1], said


def test_outputs_are_stored_over_tls_with_the_ca_and_without_it_fail_in_one_clear_line(
    tmp_path: Path, redis_tls: RedisServer
) -> None:
    assert redis_tls.url.startswith("rediss://")
    write = 'echo \'{"rows": 7}\' > "$DAGWRIGHT_OUTPUTS"'
    env = {"DAGWRIGHT_REDIS_CA": str(redis_tls.ca)}
    code, message, stderr = run_node(tmp_path, write, "--redis-url", redis_tls.url, env=env)
    assert code == 0, stderr
    key = nodeio.outputs_key("uid-1", "extract")
    assert nodeio.read_termination(message, succeeded=True).reference == key
    assert json.loads(redis_tls.client().get(key) or b"null") == {"rows": 7}

    started = time.monotonic()
    code, message, stderr = run_node(tmp_path, write, "--redis-url", redis_tls.url)
    assert code == nodeio.EXIT_RUNNER_UNAVAILABLE
    assert stderr.count("\n") == 1 and "set DAGWRIGHT_REDIS_CA" in stderr and "not trusted" in stderr
    assert nodeio.read_termination(message, succeeded=False).error_reason == "RunnerUnavailable"
    assert time.monotonic() - started < 2.5  # no retries with backoff: another try cannot fix a certificate
