"""Names, labels and annotation keys the operator puts on Kubernetes objects, in one place."""

from __future__ import annotations

import hashlib
import re

GROUP = "dagwright.io"
VERSION = "v1alpha1"
PLURAL = "workflows"
TEMPLATE_PLURAL = "workflowtemplates"
API_VERSION = f"{GROUP}/{VERSION}"
CRON_PLURAL = "cronworkflows"
CRON_KIND = "CronWorkflow"

LABEL_WORKFLOW = "dagwright.io/workflow"
LABEL_NODE = "dagwright.io/node"
LABEL_ATTEMPT = "dagwright.io/attempt"
LABEL_ITEM = "dagwright.io/item"  # a forEach node's item (its index)
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "dagwright"
ANNOTATION_WORKFLOW_UID = "dagwright.io/workflow-uid"
ANNOTATION_CREATED_BY = "dagwright.io/created-by"  # the operator replica (Lease identity) that created a Job
CONTAINER = "main"
# On every Workflow a CronWorkflow starts: its CronWorkflow (a label value, see `label_value`), the scheduled
# time it is the run of (unix seconds, label and annotation), and `manual` for `dagwright cron trigger`'s runs.
LABEL_CRON_WORKFLOW = "dagwright.io/cron-workflow"
LABEL_SCHEDULED_TIME = "dagwright.io/scheduled-time"
LABEL_MANUAL = "dagwright.io/manual"

_MAX_NAME = 63
_INVALID_LABEL_CHARS = re.compile(r"[^a-z0-9A-Z._-]")


def job_name(workflow: str, node: str, attempt: int, item: int | None = None) -> str:
    """A deterministic Job name for one attempt, at most 63 characters.

    Deterministic so that creating it twice (a restarted operator, a lost status write) hits AlreadyExists
    instead of running the attempt twice. Long names are shortened and made unique with a hash of the full
    workflow/node pair. A forEach item's attempt ends in `-i{item}a{attempt}`: a plain attempt's name ends in
    digits only after its last dash, so neither can be the other's, whatever the node names.
    """
    tail = str(attempt) if item is None else f"i{item}a{attempt}"
    name = f"{workflow}-{node}-{tail}"
    if len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(f"{workflow}/{node}".encode()).hexdigest()[:10]
    suffix = f"-{digest}-{tail}"
    prefix = f"{workflow}-{node}"[: _MAX_NAME - len(suffix)].rstrip("-.")
    return prefix + suffix


def label_value(value: str) -> str:
    """A label-safe form of a name (workflow names may be longer than a label value's 63 characters)."""
    if len(value) <= _MAX_NAME and not _INVALID_LABEL_CHARS.search(value):
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    return (_INVALID_LABEL_CHARS.sub("-", value)[: _MAX_NAME - 11].rstrip("-._") + "-" + digest).lstrip("-._")
