"""`dagwright cron list|suspend|resume|trigger`: CronWorkflows in the cluster (`dagwright.k8s.croncommands`).

suspend and resume are merge patches of `spec.suspend` (as `kubectl patch` would do); trigger starts one run now,
named `<cron>-manual-<unix seconds>`. Each failure a user can cause is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
from typing import Any

from dagwright.cli.cluster import Handler, _namespace
from dagwright.cli.cluster import _age as age  # the same columns as `dagwright list`
from dagwright.cli.cluster import _guard as guard  # one line per cluster failure, as every cluster verb
from dagwright.cli.cluster import _table as table
from dagwright.k8s import commands, croncommands


def register(subcommands: Any) -> None:
    """Add `cron` and its verbs to the `dagwright` parser."""
    cron = subcommands.add_parser("cron", help="list, suspend, resume or trigger CronWorkflows")
    verbs = cron.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="CronWorkflows with schedule, last and next run")
    listing.add_argument("-A", "--all-namespaces", action="store_true")
    _namespace(listing)
    listing.set_defaults(handler=_cron(_list))
    for verb, text in (
        ("suspend", "stop starting runs (scheduled times are skipped, reason Suspended)"),
        ("resume", "start runs again from the next scheduled time"),
        ("trigger", "start one run now, named <cron>-manual-<unix seconds>"),
    ):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("name", help="the CronWorkflow's name")
        _namespace(parser)
        parser.set_defaults(handler=_cron({"trigger": _trigger}.get(verb, _suspend)))


def _cron(handler: Handler) -> Handler:
    return guard(handler, "cronworkflow")


def _list(args: argparse.Namespace) -> int:
    api_client, default_namespace = commands.connect()
    namespace = None if args.all_namespaces else args.namespace or default_namespace
    rows: list[tuple[str, ...]] = [("NAMESPACE", "NAME", "SCHEDULE", "TIMEZONE", "SUSPENDED", "ACTIVE", "LAST", "NEXT")]
    for item in croncommands.list_crons(api_client, namespace):
        meta, spec, status = item["metadata"], item.get("spec") or {}, item.get("status") or {}
        rows.append(
            (
                meta["namespace"],
                meta["name"],
                str(spec.get("schedule", "")),
                str(spec.get("timezone") or "UTC"),
                "yes" if spec.get("suspend") else "no",
                str(len(status.get("active") or [])),
                age(status.get("lastScheduleTime")) + (" ago" if status.get("lastScheduleTime") else ""),
                str(status.get("nextScheduleTime") or ""),
            )
        )
    table(rows)
    return 0


def _suspend(args: argparse.Namespace) -> int:
    api_client, default_namespace = commands.connect()
    args.namespace = args.namespace or default_namespace
    croncommands.set_suspended(api_client, args.namespace, args.name, args.verb == "suspend")
    print(f"cronworkflow {args.namespace}/{args.name}: {'suspended' if args.verb == 'suspend' else 'resumed'}")
    return 0


def _trigger(args: argparse.Namespace) -> int:
    api_client, default_namespace = commands.connect()
    args.namespace = args.namespace or default_namespace
    run = croncommands.trigger(api_client, args.namespace, args.name)
    print(f"workflow {args.namespace}/{run} started")
    return 0
