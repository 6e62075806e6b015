"""`model download|list|get|delete` and `worker spawn|list|stop`: jobs a hive runs."""

from __future__ import annotations

from typing import Any

from rbee_daemons.operations import DEFAULT_MODEL_ID
from rbee_tui.cli import tables, validate
from rbee_tui.cli.keeper import Keeper

HIVE_HELP = "Hive to run on: a hives.conf alias, `localhost` or a hive id (default: the only " \
    "online hive)."
MODEL_COLUMNS = [("ID", "id"), ("NAME", "name"), ("STATE", "state"), ("SIZE", "size"),
                 ("SOURCE", "source")]
WORKER_COLUMNS = [("ID", "worker_id"), ("MODEL", "model"), ("STATE", "state"),
                  ("PORT", "port"), ("PID", "pid"), ("IN FLIGHT", "in_flight")]


def register(commands: Any) -> None:
    model = commands.add_parser("model", help="Download, list, show or delete a hive's models.")
    actions = model.add_subparsers(dest="action", metavar="ACTION", required=True)
    download = _action(actions, "download", "Download a model into the hive's catalog, with "
                       "progress on stderr.")
    download.add_argument("model", metavar="REF", help="Model ref: `hf:ORG/REPO:FILE.gguf` or "
                          "`file:/path/to/model.gguf`.")
    _action(actions, "list", "List the models in the hive's catalog.")
    get = _action(actions, "get", "Show one model of the hive's catalog.")
    get.add_argument("id", metavar="ID", help="Model id, e.g. gemma-3-270m.")
    delete = _action(actions, "delete", "Delete a model and its files from the hive.")
    delete.add_argument("id", metavar="ID", help="Model id, e.g. gemma-3-270m.")

    worker = commands.add_parser("worker", help="Spawn, list or stop a hive's workers.")
    actions = worker.add_subparsers(dest="action", metavar="ACTION", required=True)
    spawn = _action(actions, "spawn", "Start a worker serving a model.", group="worker")
    spawn.add_argument("--model", default=DEFAULT_MODEL_ID,
                       help="Model id to serve (default: %(default)s).")
    _action(actions, "list", "List the hive's workers.", group="worker")
    stop = _action(actions, "stop", "Stop a worker (SIGTERM, SIGKILL after a grace period).",
                   group="worker")
    stop.add_argument("id", metavar="ID", help="Worker id, as `worker list` prints it.")


def _action(actions: Any, name: str, summary: str, group: str = "model") -> Any:
    parser = actions.add_parser(name, help=summary, description=summary)
    parser.add_argument("--hive", metavar="ALIAS", default=None, help=HIVE_HELP)
    parser.set_defaults(handler=run_hive_operation, operation=f"{group}_{name}")
    return parser


def run_hive_operation(keeper: Keeper) -> int:
    args = keeper.args
    operation: dict[str, Any] = {"operation": args.operation}
    for field in ("model", "id"):
        if getattr(args, field, None) is not None:
            operation[field] = getattr(args, field)
    hive_id = keeper.hive_id(args.hive)
    if hive_id is not None:
        operation["hive_id"] = hive_id
    model_option = "REF" if args.operation == "model_download" else "--model"
    validate.operation(operation, {"model": model_option, "id": "ID", "hive_id": "--hive"})
    with keeper.ensure_queen() as client:
        code, result = keeper.run_job(client, operation)
    if result is not None:
        keeper.output(result, format_result(args.operation, result))
    return code


def format_result(operation: str, result: Any) -> str:
    """Tables for lists, `key: value` lines for one object."""
    if isinstance(result, dict):
        for key, columns in (("models", MODEL_COLUMNS), ("workers", WORKER_COLUMNS)):
            if isinstance(result.get(key), list):
                items = [_readable(item) for item in result[key]]
                return tables.records(items, columns)
        return "\n".join(f"{key}: {value}" for key, value in _readable(result).items())
    return str(result)


def _readable(item: dict[str, Any]) -> dict[str, Any]:
    if isinstance(item.get("size"), int):
        return {**item, "size": tables.size(item["size"])}
    return item
