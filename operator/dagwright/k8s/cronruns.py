"""The Workflows a CronWorkflow starts, as Kubernetes objects: building one, and reading one back as a `Run`.

Used by the operator's cron loop (`cron.py`) and by `dagwright cron trigger` (which creates a manual run itself,
so a trigger works while the operator is down, as `kubectl create` of the same object would). Plain dicts only:
importing this loads no Kubernetes client.

A run carries, besides the user's `spec.workflowMetadata`:
- label `dagwright.io/cron-workflow: <cron name>` (hashed when longer than a label value) to list runs by, and an
  ownerReference to the CronWorkflow (deleting the CronWorkflow deletes its runs; runs of a deleted CronWorkflow
  of the same name are told apart by its uid);
- label `dagwright.io/scheduled-time: <unix seconds>` and the same as an annotation in RFC 3339, for people;
- label `dagwright.io/manual: "true"` on triggered runs, which are no scheduled time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dagwright import cronplan, schedules
from dagwright.k8s import names

Body = dict[str, Any]


def selector(cron: str) -> str:
    """The label selector of a CronWorkflow's runs."""
    return f"{names.LABEL_CRON_WORKFLOW}={names.label_value(cron)}"


def run_body(cron: Body, time: datetime, *, manual: bool = False) -> Body:
    """The Workflow of one run: `spec.workflow` exactly as written, named from its time (`cronplan.run_name`)."""
    meta = cron["metadata"]
    spec = cron.get("spec") or {}
    extra = spec.get("workflowMetadata") or {}
    name = (cronplan.manual_run_name if manual else cronplan.run_name)(meta["name"], time)
    seconds = str(schedules.unix_seconds(time))
    labels = {
        **(extra.get("labels") or {}),
        names.LABEL_CRON_WORKFLOW: names.label_value(meta["name"]),
        names.LABEL_SCHEDULED_TIME: seconds,
    }
    if manual:
        labels[names.LABEL_MANUAL] = "true"
    annotations = {**(extra.get("annotations") or {}), names.LABEL_SCHEDULED_TIME: _rfc3339(time)}
    owner = {
        "apiVersion": names.API_VERSION,
        "kind": names.CRON_KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": False,
    }
    return {
        "apiVersion": names.API_VERSION,
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner],
        },
        "spec": spec.get("workflow") or {},
    }


def runs_of(cron_uid: str, workflows: list[Body]) -> list[cronplan.Run]:
    """The listed Workflows that are this CronWorkflow's runs (by owner uid), as the plan reads them."""
    found = []
    for body in workflows:
        meta = body.get("metadata") or {}
        if not any(ref.get("uid") == cron_uid for ref in meta.get("ownerReferences") or []):
            continue
        labels = meta.get("labels") or {}
        status = body.get("status") or {}
        found.append(
            cronplan.Run(
                name=meta.get("name", ""),
                uid=meta.get("uid", ""),
                scheduled_time=_seconds(labels.get(names.LABEL_SCHEDULED_TIME)),
                manual=labels.get(names.LABEL_MANUAL) == "true",
                phase=status.get("phase"),
                created=parse_time(meta.get("creationTimestamp")),
                finished_at=parse_time(status.get("finishedAt")),
                stopped=bool((body.get("spec") or {}).get("stopped")),
            )
        )
    return found


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _seconds(value: str | None) -> datetime | None:
    if value is None or not value.isdigit():
        return None
    return schedules.from_unix_seconds(int(value))


def _rfc3339(time: datetime) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ")
