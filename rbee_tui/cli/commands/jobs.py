"""`jobs list|show|follow|cancel`: the queen's jobs."""

from __future__ import annotations

from typing import Any

from rbee_tui.cli import tables
from rbee_tui.cli.keeper import EXIT_OK, Keeper

JOB_COLUMNS = [("ID", "job_id"), ("OPERATION", "operation"), ("STATE", "state"),
               ("CREATED", "created_at"), ("FINISHED", "finished_at")]


def register(commands: Any) -> None:
    group = commands.add_parser("jobs", help="List, show, follow or cancel the queen's jobs.")
    actions = group.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="List recent jobs, newest first.")
    listing.set_defaults(handler=list_command)
    for name, handler, summary in (
        ("show", show_command, "Print one job's state and timestamps."),
        ("follow", follow_command, "Stream a job's events from the start until it ends; "
         "Ctrl+C stops following and cancels the job."),
        ("cancel", cancel_command, "Cancel a queued or running job."),
    ):
        action = actions.add_parser(name, help=summary, description=summary)
        action.add_argument("job_id", metavar="JOB_ID", help="Job id, e.g. job-1234….")
        action.set_defaults(handler=handler)


def list_command(keeper: Keeper) -> int:
    with keeper.client() as client:
        jobs = client.jobs()
    keeper.output(jobs, tables.records(jobs, JOB_COLUMNS))
    return EXIT_OK


def show_command(keeper: Keeper) -> int:
    with keeper.client() as client:
        job = client.job(keeper.args.job_id)
    keeper.output(job, "\n".join(f"{key}: {value}" for key, value in job.items()))
    return EXIT_OK


def follow_command(keeper: Keeper) -> int:
    with keeper.client() as client:
        code, result = keeper.follow_job(client, keeper.args.job_id)
    if result is not None and keeper.args.json:
        keeper.output(result, "")
    return code


def cancel_command(keeper: Keeper) -> int:
    with keeper.client() as client:
        answer = client.cancel(keeper.args.job_id)
    keeper.output(answer, f"{answer.get('job_id')}: {answer.get('state')}")
    return EXIT_OK
