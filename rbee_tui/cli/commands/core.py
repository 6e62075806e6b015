"""`infer` and `status`: the commands that talk to the queen about the whole cluster."""

from __future__ import annotations

import argparse
from typing import Any

from rbee_daemons.operations import DEFAULT_MODEL_ID
from rbee_tui.cli import tables, validate
from rbee_tui.cli.keeper import Keeper

# The infer operation's fields and the options that set them, for error messages.
INFER_OPTIONS = {"model": "--model", "prompt": "PROMPT", "max_tokens": "--max-tokens",
                 "temperature": "--temperature", "top_p": "--top-p", "top_k": "--top-k",
                 "seed": "--seed", "stop": "--stop", "hive_id": "--hive"}


def register(commands: Any) -> None:
    infer = commands.add_parser("infer", help="Generate text from a prompt, streamed to stdout.")
    infer.add_argument("prompt", metavar="PROMPT", help="Text to complete.")
    infer.add_argument("--model", default=DEFAULT_MODEL_ID,
                       help="Model id in a hive's catalog (default: %(default)s).")
    infer.add_argument("--max-tokens", type=int, default=128,
                       help="Maximum tokens to generate, 1 to 32768 (default: %(default)s).")
    infer.add_argument("--temperature", type=validate.finite_float, default=0.8,
                       help="Sampling temperature, 0 (greedy) to 2 (default: %(default)s).")
    infer.add_argument("--top-p", type=validate.finite_float, default=None,
                       help="Nucleus sampling probability mass, above 0 up to 1.")
    infer.add_argument("--top-k", type=int, default=None,
                       help="Sample from the K most likely tokens.")
    infer.add_argument("--seed", type=int, default=None,
                       help="Random seed for sampling, 0 to 4294967295.")
    infer.add_argument("--stop", action="append", default=None,
                       help="Stop sequence; repeat for up to 4.")
    infer.add_argument("--hive", metavar="ALIAS", default=None,
                       help="Run on this hive: a hives.conf alias, `localhost` or a hive id.")
    infer.set_defaults(handler=infer_command)

    status = commands.add_parser("status", help="Show hives, workers and models.")
    status.set_defaults(handler=status_command)


def infer_command(keeper: Keeper) -> int:
    args: argparse.Namespace = keeper.args
    operation: dict[str, Any] = {
        "operation": "infer", "model": args.model, "prompt": args.prompt,
        "max_tokens": args.max_tokens, "temperature": args.temperature,
    }
    optional = {"top_p": args.top_p, "top_k": args.top_k, "seed": args.seed,
                "stop": args.stop, "hive_id": keeper.hive_id(args.hive)}
    operation.update({key: value for key, value in optional.items() if value is not None})
    validate.operation(operation, INFER_OPTIONS)
    with keeper.ensure_queen() as client:
        code, result = keeper.run_job(client, operation)
    if args.json and result is not None:
        keeper.output(result, "")
    return code


def status_command(keeper: Keeper) -> int:
    with keeper.ensure_queen() as client:
        code, result = keeper.run_job(client, {"operation": "status"})
    if result is not None:
        keeper.output(result, tables.status(result))
    return code
