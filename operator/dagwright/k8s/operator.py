"""The kopf wiring: watch CronWorkflows (kopf), and Workflows and the Jobs and pods the operator made (watch.py and
workflowwatch.py, a leaner watch of our own: a node's Job and ended pod bring about six events, Workflows the echo
of every status patch), queue reconciles and cron passes, run workers, elect a leader.

Handlers are thin: a watch event only updates the cache and queues the Workflow's key. kopf's own
change-tracking handlers (on.create/on.update) are not used, so kopf writes nothing to our objects: no
annotations, no finalizers, no status fields of its own; all writes are the reconciler's.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import kopf

from dagwright.k8s import admission, connection, cron, metrics, names, watch
from dagwright.k8s.cache import Cache, Key, key_of, pod_may_matter
from dagwright.k8s.client import KubeApi, load_config
from dagwright.k8s.leader import LeaseElector
from dagwright.k8s.queue import WorkQueue
from dagwright.k8s.reconcile import LATER, Reconciler, Settings
from dagwright.k8s.workflowwatch import WorkflowWatch

if TYPE_CHECKING:  # the Redis client (~5 MiB) is imported only by an operator given Redis
    from dagwright.k8s.progress import ProgressFeed

log = logging.getLogger("dagwright.operator")

_ERROR_BACKOFF_MAX = 60.0
_DRAIN_SECONDS = 10.0  # on shutdown, how long running passes may take to end before the Lease is handed over
_CRON_WORKERS = 16  # CronWorkflow passes at once, in threads of their own (busy Workflows never delay a
# schedule); a due pass mostly waits on 2 API round trips (create, status), so 200 due at once need many
_FINISHED = ("Succeeded", "Failed", "Stopped")
# The pods the operator watches: only those that ended. A pod's creation, scheduling and start are half of
# its events and change no decision (a running attempt is read from its Job); a pod that cannot start is
# asked for when it would count as stuck (`outcomes.start_due`).
ENDED_PODS = "status.phase!=Pending,status.phase!=Running"


class Runtime:
    """Everything one operator process holds, created at kopf start-up."""

    def __init__(
        self,
        settings: Settings,
        lease_namespace: str,
        metrics_port: int | None,
        webhook: admission.WebhookSettings | None = None,
    ) -> None:
        self.settings = settings
        self.lease_namespace = lease_namespace
        self.metrics_port = metrics_port
        self.webhook = admission.Webhook(webhook) if webhook is not None else None
        self.cache = Cache()
        self.queue: WorkQueue[Key] | None = None
        self.reconciler: Reconciler | None = None
        self.elector: LeaseElector | None = None
        self.feed: ProgressFeed | None = None
        self.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="reconcile")
        self.tasks: list[asyncio.Task[Any]] = []
        self.failures: dict[Key, int] = {}
        self.crons = cron.CronBook()
        self.cron_queue: WorkQueue[cron.Key] | None = None
        self.cron_runner: cron.CronRunner | None = None
        self.cron_pool = ThreadPoolExecutor(max_workers=_CRON_WORKERS, thread_name_prefix="cron")
        self.cron_events = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cron-events")
        self.watches: list[watch.Watch] = []

    def enqueue(self, key: Key | None) -> None:
        if key is not None and self.queue is not None:
            self.queue.add(key)

    def post_cron_event(self, call: Callable[[], None]) -> None:
        """Run a cron Event post on threads of its own: best-effort, never in the way of a scheduled create."""
        self.cron_events.submit(call)

    def enqueue_cron(self, key: cron.Key | None, delay: float = 0.0) -> None:
        if key is not None and self.cron_queue is not None:
            self.cron_queue.add(key, delay)

    def order(self, key: Key) -> tuple[Any, ...]:
        """Higher spec.priority first, then older workflows."""
        body = self.cache.workflow(key) or {"metadata": {}, "spec": {}}
        priority = (body.get("spec") or {}).get("priority") or 0
        return (-int(priority) if isinstance(priority, int) else 0, body["metadata"].get("creationTimestamp") or "")


class NoDiffBase(kopf.DiffBaseStorage):
    """No "last handled state": nothing here diffs objects, and kopf writes no annotations."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


class NoProgress(kopf.ProgressStorage):
    """No per-handler progress records: event handlers have none."""

    def fetch(self, *, key: Any, body: kopf.Body) -> None:
        return None

    def store(self, *, key: Any, record: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def purge(self, *, key: Any, body: kopf.Body, patch: kopf.Patch) -> None:
        return None

    def touch(self, *, body: kopf.Body, patch: kopf.Patch, value: str | None) -> None:
        return None

    def clear(self, *, essence: kopf.BodyEssence) -> kopf.BodyEssence:
        return essence


def build_registry(runtime: Runtime) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> Any:
        return connection.login_info(load_config())  # the same server and credentials as our own requests

    @kopf.on.startup(registry=registry)
    async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        settings.scanning.disabled = True  # no CRD/namespace watching: the chart's RBAC grants neither
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 30
        # kopf deep-copies every object on every watch event to diff it against the last handled state (for
        # on.create/on.update handlers, which we do not use); on a 10,000-node Workflow or thousands of pod
        # events that copying dominated the event loop. We only have event handlers: skip it.
        settings.persistence.diffbase_storage = NoDiffBase()
        settings.persistence.progress_storage = NoProgress()
        if runtime.webhook is not None:
            # Every replica serves it, leader or not: validation reads only the request, never the cache.
            settings.admission.server = runtime.webhook.server()
        await _start(runtime)

    @kopf.on.cleanup(registry=registry)
    async def stop(**_: Any) -> None:
        for task in runtime.tasks:
            task.cancel()
        loop = asyncio.get_running_loop()
        held = runtime.elector.stand_down() if runtime.elector is not None else False

        # Passes already running may still be creating Jobs: let them end before another replica may act.
        def drain() -> None:
            runtime.cron_pool.shutdown(wait=True, cancel_futures=True)
            runtime.cron_events.shutdown(wait=True)
            runtime.pool.shutdown(wait=True, cancel_futures=True)

        drained = loop.run_in_executor(None, drain)
        for watched in runtime.watches:
            await loop.run_in_executor(None, watched.stop)
        try:
            await asyncio.wait_for(drained, timeout=_DRAIN_SECONDS)
        except TimeoutError:
            log.warning("passes still running after %.0fs; keeping the Lease until it expires", _DRAIN_SECONDS)
        else:
            if held and runtime.elector is not None:
                await loop.run_in_executor(None, runtime.elector.release)
        if runtime.webhook is not None:
            await loop.run_in_executor(None, runtime.webhook.close)
        if runtime.feed is not None:
            await loop.run_in_executor(None, runtime.feed.stop)

    if runtime.webhook is not None:
        admission.register(registry)

    @kopf.on.event(names.GROUP, names.VERSION, names.CRON_PLURAL, registry=registry)
    async def cron_event(**kwargs: Any) -> None:
        event = kwargs["event"]
        body = event["object"]
        if event.get("type") == "DELETED":
            key = runtime.crons.drop(body)
            if runtime.cron_queue is not None:
                runtime.cron_queue.forget(key)
            if runtime.cron_runner is not None:
                runtime.cron_runner.forget(body["metadata"].get("uid", ""))
        else:
            runtime.enqueue_cron(runtime.crons.put(body))

    @kopf.on.probe(id="leader", registry=registry)
    def leader_probe(**_: Any) -> bool:
        return runtime.elector.is_leader() if runtime.elector is not None else True

    return registry


async def _start(runtime: Runtime) -> None:
    loop = asyncio.get_running_loop()
    api_client = load_config()
    queue: WorkQueue[Key] = WorkQueue(loop, runtime.order)
    runtime.queue = queue
    elector: LeaseElector | None = None
    if runtime.lease_namespace:
        elector = LeaseElector(api_client, runtime.lease_namespace)
        elector.on_elected = lambda: _enqueue_all(runtime)
        runtime.elector = elector
    cron_runner = cron.CronRunner(
        api=KubeApi(api_client),
        book=runtime.crons,
        is_leader=elector.is_leader if elector is not None else _sole_replica,
        cached_runs=lambda namespace, value: runtime.cache.workflows_labelled(
            namespace, names.LABEL_CRON_WORKFLOW, value
        ),
        remember=_remember(runtime),
        post=runtime.post_cron_event,
    )
    runtime.cron_runner = cron_runner
    runtime.cron_queue = WorkQueue(loop, cron_runner.order)
    feed: ProgressFeed | None = None
    if runtime.settings.redis is not None:
        from dagwright.k8s.progress import ProgressFeed

        feed = ProgressFeed(
            runtime.settings.redis.url,
            os.environ.get("DAGWRIGHT_REDIS_PASSWORD"),
            _waker(runtime),
            ca_file=runtime.settings.redis_ca_file,
        )
    reconciler = Reconciler(
        api=KubeApi(api_client),
        cache=runtime.cache,
        settings=runtime.settings,
        is_leader=elector.is_leader if elector is not None else _sole_replica,
        identity=elector.identity if elector is not None else None,
        requeue=queue.add,
        queued_again=queue.queued_again,
        progress=feed.latest if feed is not None else None,
    )
    runtime.reconciler = reconciler
    if elector is not None:
        runtime.tasks.append(asyncio.create_task(_lead(elector)))
    if feed is not None:
        runtime.feed = feed
        feed.start()
    if runtime.metrics_port:
        metrics.serve(runtime.metrics_port, metrics.FleetCollector(reconciler.phase_counts, reconciler.waiting_total))
    runtime.watches = _watches(runtime, api_client)
    for watched in runtime.watches:
        watched.start()
    for number in range(runtime.settings.workers):
        runtime.tasks.append(asyncio.create_task(_work(runtime, reconciler, number)))
    for _ in range(_CRON_WORKERS):
        runtime.tasks.append(asyncio.create_task(_work_cron(runtime, cron_runner)))


def _watches(runtime: Runtime, api_client: Any) -> list[watch.Watch]:
    """The Workflows, and the managed Jobs and pods, in each watched namespace (or all): into the cache,
    passes queued."""
    selector = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY}"
    spaces: list[str | None] = list(runtime.settings.namespaces) or [None]
    workflows: list[watch.Watch] = [
        WorkflowWatch(api_client, space, _workflow_event(runtime), _cached_workflows(runtime, space))
        for space in spaces
    ]
    jobs = [
        watch.Watch(api_client, watch.resource_path("batch/v1", "jobs", space), selector, _job_event(runtime))
        for space in spaces
    ]
    pods = [
        watch.Watch(api_client, watch.resource_path("v1", "pods", space), selector, _pod_event(runtime), ENDED_PODS)
        for space in spaces
    ]
    return workflows + jobs + pods


def _workflow_event(runtime: Runtime) -> watch.Handler:
    """Into the cache before the queue wakes a worker; a deleted Workflow forgotten; a run that ended (or went)
    wakes its CronWorkflow (its active list and history)."""

    def handle(kind: str, body: dict[str, Any]) -> None:
        deleted = kind == "DELETED"
        if deleted:
            runtime.cache.drop_workflow(body)
            if runtime.reconciler is not None:
                runtime.reconciler.forget_uid(body["metadata"].get("uid", ""))
        elif runtime.cache.put_workflow(body):
            runtime.enqueue(key_of(body))
        if deleted or (body.get("status") or {}).get("phase") in _FINISHED:
            runtime.enqueue_cron(cron.cron_of_run(body))

    return handle


def _cached_workflows(runtime: Runtime, space: str | None) -> Callable[[], list[dict[str, Any]]]:
    """The cached Workflows of one namespace (None: all), for a relist to find those deleted meanwhile."""

    def cached() -> list[dict[str, Any]]:
        keys = [key for key in runtime.cache.workflow_keys() if space is None or key[0] == space]
        return [body for key in keys if (body := runtime.cache.workflow(key)) is not None]

    return cached


def _job_event(runtime: Runtime) -> watch.Handler:
    def handle(kind: str, body: dict[str, Any]) -> None:
        if kind == "DELETED":
            runtime.enqueue(runtime.cache.drop_job(body))
        else:
            runtime.enqueue(runtime.cache.put_job(body))

    return handle


def _pod_event(runtime: Runtime) -> watch.Handler:
    def handle(kind: str, body: dict[str, Any]) -> None:
        if kind == "DELETED":
            runtime.cache.drop_pod(body)
            return
        key = runtime.cache.put_pod(body)
        if key is None or not pod_may_matter(body):
            return
        queue, reconciler = runtime.queue, runtime.reconciler
        if queue is None or reconciler is None:
            return
        if not queue.processing(key) and reconciler.may_wait(key, body):
            queue.defer(key, LATER)  # its end starts nothing yet: recorded by the workflow's next pass
        else:
            queue.add(key)

    return handle


def _remember(runtime: Runtime) -> Callable[[dict[str, Any]], None]:
    """A run the cron loop created, into the cache (write-through) and the Workflow queue: its own watch
    event, of the same resourceVersion, then changes nothing, so its first pass is queued here."""

    def remember(body: dict[str, Any]) -> None:
        if runtime.cache.put_workflow(body):
            runtime.enqueue(key_of(body))

    return remember


def _sole_replica() -> bool:
    """Without leader election (no --lease-namespace) this replica always acts."""
    return True


def _waker(runtime: Runtime) -> Callable[[str, float], None]:
    """Progress arrives on a Redis thread: queue that workflow's pass after the given delay."""

    def wake(uid: str, delay: float) -> None:
        key = runtime.cache.key_of_uid(uid)
        if key is not None and runtime.queue is not None:
            runtime.queue.add(key, delay)

    return wake


def _enqueue_all(runtime: Runtime) -> None:
    for key in runtime.cache.workflow_keys():
        runtime.enqueue(key)
    for key in runtime.crons.names():
        runtime.enqueue_cron(key)


async def _lead(elector: LeaseElector) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await loop.run_in_executor(None, elector.try_acquire_or_renew)
        await asyncio.sleep(elector.renew_seconds)


async def _work(runtime: Runtime, reconciler: Reconciler, number: int) -> None:
    loop = asyncio.get_running_loop()
    queue = runtime.queue
    assert queue is not None
    while True:
        key = await queue.get()
        try:
            delay = await loop.run_in_executor(runtime.pool, reconciler.reconcile, key)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failures = runtime.failures.get(key, 0) + 1
            runtime.failures[key] = failures
            delay = min(_ERROR_BACKOFF_MAX, 0.25 * 2**failures)
            metrics.RECONCILE_ERRORS.inc()
            log.warning(
                "reconcile of %s/%s failed (%s: %s); retrying in %.1fs",
                key[0],
                key[1],
                type(error).__name__,
                error,
                delay,
                extra={"namespace": key[0], "workflow": key[1]},
            )
        else:
            runtime.failures.pop(key, None)
        finally:
            queue.done(key)
        if delay is not None:
            queue.add(key, delay)


async def _work_cron(runtime: Runtime, runner: cron.CronRunner) -> None:
    """Cron passes; a pass that fails is retried with backoff, one that succeeds sleeps until its next time."""
    loop = asyncio.get_running_loop()
    queue = runtime.cron_queue
    assert queue is not None
    failures: dict[cron.Key, int] = {}
    while True:
        key = await queue.get()
        try:
            delay = await loop.run_in_executor(runtime.cron_pool, runner.reconcile, key)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            failures[key] = failures.get(key, 0) + 1
            delay = min(_ERROR_BACKOFF_MAX, 0.25 * 2 ** failures[key])
            metrics.CRON_ERRORS.inc()
            log.warning(
                "cron pass of %s/%s failed (%s: %s); retrying in %.1fs", *key, type(error).__name__, error, delay
            )
        else:
            failures.pop(key, None)
        finally:
            queue.done(key)
        if delay is not None:
            queue.add(key, max(delay, 0.001))


def run(
    settings: Settings,
    *,
    lease_namespace: str,
    metrics_port: int | None,
    health_port: int | None,
    json_logs: bool = False,
    webhook: admission.WebhookSettings | None = None,
) -> None:
    """Run the operator until SIGTERM/SIGINT."""
    _limit_malloc_arenas()
    _configure_logging(json_logs)
    runtime = Runtime(settings, lease_namespace, metrics_port, webhook)
    registry = build_registry(runtime)
    liveness = f"http://0.0.0.0:{health_port}/healthz" if health_port else None
    kopf.run(
        registry=registry,
        standalone=True,
        clusterwide=not settings.namespaces,
        namespaces=settings.namespaces,
        liveness_endpoint=liveness,
    )


_M_ARENA_MAX = -8  # glibc's mallopt parameter number
_MALLOC_ARENAS = 2


def _limit_malloc_arenas() -> None:
    """At most two glibc malloc arenas, as MALLOC_ARENA_MAX=2 would set (an explicit MALLOC_ARENA_MAX wins).

    glibc gives threads that allocate at the same time arenas of their own, up to 8 per core, and memory
    freed in one arena serves only that arena. The operator's reconcile and Job-create threads parse and build
    JSON side by side, so each arena keeps its own slack: with 1,000 workflows in flight (bench/operator_memory.py)
    the default gave 6 arenas holding 7 MiB besides the main heap, two arenas hold ~2 MiB. A few MiB, for one
    call at start-up; Python's own small objects are not malloc'd, and the threads mostly wait on the API server.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_ARENA_MAX, _MALLOC_ARENAS)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to limit
        return


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the workflow and node a line is about when known."""

    _FIELDS = ("workflow", "namespace", "node")

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self._FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        kopf_object = getattr(record, "k8s_ref", None)
        if isinstance(kopf_object, dict):
            entry.setdefault("workflow", kopf_object.get("name"))
            entry.setdefault("namespace", kopf_object.get("namespace"))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _configure_logging(json_logs: bool) -> None:
    handler = logging.StreamHandler()
    if json_logs:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(os.environ.get("DAGWRIGHT_LOG_LEVEL", "INFO").upper())
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)  # a "Handler succeeded" line per watch event
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # a line per admission review
    admission.quiet_kopf_refusals()
