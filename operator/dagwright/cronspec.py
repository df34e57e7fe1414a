"""The CronWorkflow resource: a Workflow spec started on a cron schedule (issue 13).

Like `spec.py` for Workflows, these pydantic models are the manifest's shape and the source of the generated
CRD (`crd.py`) and reference (`reference.py`). `spec.workflow` is a `WorkflowSpec` as written, never resolved
here: the operator creates a Workflow whose spec is exactly it, and that Workflow's own reconciler does the
rest (so whatever a Workflow spec may say, a CronWorkflow's runs may say too). When a time is due and what is
skipped is `schedules.py`; what a pass does about it is `cronplan.py`.

`problems` is everything the webhook and the operator refuse a CronWorkflow for that is not about the Workflow
spec inside it (the operator and webhook check that one as they check a Workflow, with the path
`spec.workflow` in front): the schema again, the schedule and its zone (`spec.schedule`, `spec.timezone`, via
`schedules.problems`), and a name short enough for its runs' names.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import pydantic
from pydantic import ConfigDict, Field

from dagwright import schedules
from dagwright.errors import Problem, SpecError
from dagwright.spec import MAX_SECONDS, Model, ObjectMeta, StringMap, WorkflowSpec
from dagwright.status import Condition

KIND = "CronWorkflow"
# A run is named `<cron>-<unix seconds>` (10 digits until 2286) or `<cron>-manual-<unix seconds>`: both within
# the 253 characters of an object name.
MAX_NAME = 253 - len("-manual-") - 10
MAX_HISTORY = 1000


class ConcurrencyPolicy(StrEnum):
    """`spec.concurrencyPolicy`: what a due time does while an earlier run is still active."""

    ALLOW = "Allow"  # start it anyway
    FORBID = "Forbid"  # skip it (RunSkipped, reason ConcurrencyPolicy)
    REPLACE = "Replace"  # stop the active runs (spec.stopped), then start it


class WorkflowMetadata(Model):
    """Labels and annotations put on every Workflow the CronWorkflow starts (beside dagwright's own)."""

    labels: StringMap = {}
    annotations: StringMap = {}


class CronWorkflowSpec(Model):
    """What a user writes under a CronWorkflow's `spec:`; `workflow` is the spec of each run."""

    schedule: Annotated[str, Field(min_length=1, max_length=256)]
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = schedules.DEFAULT_TIMEZONE
    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Allow"
    starting_deadline_seconds: Annotated[int, Field(ge=0, le=MAX_SECONDS)] | None = None
    catch_up: Literal["Latest", "All", "None"] = "Latest"
    suspend: bool = False
    successful_runs_history_limit: Annotated[int, Field(ge=0, le=MAX_HISTORY)] = 3
    failed_runs_history_limit: Annotated[int, Field(ge=0, le=MAX_HISTORY)] = 1
    workflow_metadata: WorkflowMetadata = WorkflowMetadata()
    workflow: WorkflowSpec


class RunRef(Model):
    """A run (a Workflow this CronWorkflow started), as the status names it."""

    name: str
    scheduled_time: datetime | None = None
    finished_at: datetime | None = None


class SkipRecord(Model):
    """The newest scheduled time that did not start, and why (the RunSkipped Event's reason and message)."""

    scheduled_time: datetime
    reason: str
    message: str = ""


class CronWorkflowStatus(Model):
    """Written only by the operator: what `kubectl get cronworkflow -o yaml` shows."""

    last_schedule_time: datetime | None = None  # the newest scheduled time a run was started for
    next_schedule_time: datetime | None = None
    active: list[str] = []  # runs not finished, oldest first
    active_count: int = 0  # len(active): the ACTIVE column of `kubectl get cronworkflows`
    last_succeeded: RunRef | None = None
    last_failed: RunRef | None = None  # Failed or Stopped
    last_skipped: SkipRecord | None = None  # also what a suspended CronWorkflow passed over
    conditions: list[Condition] = []  # `Scheduling`: True, or False with reason Suspended or InvalidSpec
    observed_generation: int | None = None


class CronWorkflowManifest(Model):
    """A whole CronWorkflow object as a user writes it."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["dagwright.io/v1alpha1"]
    kind: Literal["CronWorkflow"]
    metadata: ObjectMeta
    spec: CronWorkflowSpec


def parse_spec(data: Any) -> CronWorkflowSpec:
    """The spec of a cluster object, or SpecError naming each field (`spec.schedule`, `spec.workflow.nodes`...)."""
    from dagwright.validation import pydantic_problems

    try:
        spec = CronWorkflowSpec.model_validate(data)
    except pydantic.ValidationError as error:
        raise SpecError(pydantic_problems(error, {"spec": data}, prefix=("spec",))) from None
    found = schedules.problems(spec.schedule, spec.timezone)
    if found:
        raise SpecError(found)
    return spec


def problems(body: dict[str, Any]) -> list[Problem]:
    """Every problem of a CronWorkflow object that is not inside `spec.workflow`'s Workflow rules."""
    found: list[Problem] = []
    name = str((body.get("metadata") or {}).get("name") or "")
    if len(name) > MAX_NAME:
        found.append(Problem("metadata.name", f"at most {MAX_NAME} characters: its runs are named <name>-<time>"))
    try:
        parse_spec(body.get("spec"))
    except SpecError as error:
        found += error.problems
    return found


def as_workflow(data: Any) -> Any:
    """A CronWorkflow manifest as the Workflow of one run (what `dagwright run` and `validate` take), after its
    own checks (SpecError); any other document as it is. Locally there is no schedule: `run` is a trigger."""
    if not isinstance(data, dict) or data.get("kind") != KIND:
        return data
    found = problems(data)
    if found:
        raise SpecError(found)
    meta = data.get("metadata") or {}
    return {
        "apiVersion": data.get("apiVersion"),
        "kind": "Workflow",
        "metadata": {key: meta[key] for key in ("name", "namespace") if key in meta},
        "spec": data["spec"]["workflow"],
    }
