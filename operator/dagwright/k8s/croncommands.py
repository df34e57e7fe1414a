"""What `dagwright cron list|suspend|resume|trigger` do in the cluster, as functions of explicit arguments.

Called by `dagwright.cli.cron`, which owns the flags and the output. The kubernetes client is imported only
inside the functions. `trigger` creates the manual run itself (the Workflow `cronruns.run_body` builds, named
`<cron>-manual-<unix seconds>`), so it works whether or not the operator is up, and the operator's next pass
sees it as an active run (Forbid and Replace count it) that is no scheduled time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from dagwright.k8s import cronruns, names


def list_crons(api_client: Any, namespace: str | None) -> list[dict[str, Any]]:
    """The CronWorkflows of one namespace, or of all (`namespace` None)."""
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(api_client)
    if namespace is None:
        response = custom.list_cluster_custom_object(
            names.GROUP, names.VERSION, names.CRON_PLURAL, _preload_content=False
        )
    else:
        response = custom.list_namespaced_custom_object(
            names.GROUP, names.VERSION, namespace, names.CRON_PLURAL, _preload_content=False
        )
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


def set_suspended(api_client: Any, namespace: str, name: str, suspend: bool) -> None:
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(api_client)
    patch = {"spec": {"suspend": suspend}}
    custom.patch_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.CRON_PLURAL, name, patch)


def trigger(api_client: Any, namespace: str, name: str, now: datetime | None = None) -> str:
    """Start one run now; its name."""
    from kubernetes import client

    custom: Any = client.CustomObjectsApi(api_client)
    response = custom.get_namespaced_custom_object(
        names.GROUP, names.VERSION, namespace, names.CRON_PLURAL, name, _preload_content=False
    )
    cron: dict[str, Any] = json.loads(response.data)
    body = cronruns.run_body(cron, (now or datetime.now(UTC)).replace(microsecond=0), manual=True)
    custom.create_namespaced_custom_object(names.GROUP, names.VERSION, namespace, names.PLURAL, body)
    return str(body["metadata"]["name"])
