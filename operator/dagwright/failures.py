"""Which failed attempts are worth retrying, and how long to wait first.

One table for every backend: the operator maps Kubernetes outcomes to these reasons, the local runner maps
process outcomes to them, and the retry policy's `policy: Transient` consults `is_transient`.
"""

from __future__ import annotations

import hashlib

from dagwright.spec import Backoff, RetryPolicy

# Failures caused by the infrastructure rather than the user's code: retrying can help.
TRANSIENT_REASONS = frozenset(
    {
        "Timeout",  # the attempt exceeded timeoutSeconds (on a cluster too, whichever clock ended it)
        "DeadlineExceeded",  # the workflow's activeDeadlineSeconds ended the attempt
        "OOMKilled",
        "Evicted",
        "Preempted",
        "NodeLost",
        "JobDeleted",  # someone else deleted the attempt's Job
        "Unschedulable",
        "RunnerUnavailable",  # node-runner could not reach its infrastructure (Redis)
    }
)
# Failures no retry can fix.
PERMANENT_REASONS = frozenset(
    {
        "ImagePullFailed",
        "ContainerConfigError",  # the pod references a Secret or ConfigMap (key) that does not exist
        "InvalidOutputs",
        "OutputsTooLarge",
        "Rejected",
        "InvalidSpec",
        "InputsUnavailable",  # upstream outputs only Redis holds: no nodeRunner to read them, or expired there
        "InputsTooLarge",  # a rendered argument or environment value is longer than exec accepts
        "InvalidInputs",  # $DAGWRIGHT_INPUTS unreadable, or a rendered value exec cannot pass (a NUL character)
    }
)


def is_transient(policy: RetryPolicy, exit_code: int | None, reason: str | None) -> bool:
    if reason in TRANSIENT_REASONS:
        return True
    if reason in PERMANENT_REASONS:
        return False
    return exit_code is not None and exit_code in policy.transient_exit_codes


def may_retry(policy: RetryPolicy, retries_used: int, transient: bool, reason: str | None) -> bool:
    if reason in PERMANENT_REASONS or retries_used >= policy.limit:
        return False
    return policy.policy == "AnyFailure" or transient


def backoff_seconds(backoff: Backoff, retry_number: int, seed: str) -> float:
    """The wait before retry `retry_number` (1 for the first retry), jittered deterministically.

    The jitter comes from a hash of `seed` (workflow, node, attempt) rather than a random generator, so the
    planner stays a pure function and a restarted operator computes the same time again.
    """
    try:
        growth = backoff.factor ** (retry_number - 1)
    except OverflowError:  # a thousand retries with factor 100: the cap applies
        growth = float("inf")
    base = min(backoff.max_seconds, backoff.initial_seconds * growth) if backoff.initial_seconds else 0.0
    digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
    unit = int.from_bytes(digest, "big") / 2**64  # uniform in [0, 1)
    return max(0.0, base * (1 + backoff.jitter * (2 * unit - 1)))
