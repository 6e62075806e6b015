"""`self-check`: narration in each mode, then the config, the queen and the hives."""

from __future__ import annotations

import sys
from typing import Any

from rbee_daemons import __version__
from rbee_daemons.errors import RbeeError
from rbee_daemons.narration import narrate
from rbee_tui.cli import cluster, daemons, hives_conf, tables
from rbee_tui.cli.keeper import EXIT_FAILURE, EXIT_OK, Keeper
from rbee_tui.cli.render import MODES, narration_line

COLUMNS = [("CHECK", "check"), ("OK", "ok"), ("DETAIL", "detail")]


def register(commands: Any) -> None:
    check = commands.add_parser(
        "self-check", help="Print a narration in each mode, then check the config, the queen "
        "and every hive; exit 1 if any check fails. Starts nothing.")
    check.set_defaults(handler=self_check_command)


def self_check_command(keeper: Keeper) -> int:
    event = narrate(
        "keeper_self_check", f"rbee-keeper {__version__} is checking the cluster.",
        cute="🐝 Bzzz! The keeper is counting every bee in the garden!",
        story='"Is everyone where they should be?" asked the keeper, opening the hive book.',
    )
    if not keeper.args.quiet:
        for mode in MODES:
            print(narration_line(dict(event), mode, color=keeper.color), file=sys.stderr)
    results = [*check_config(), *check_queen(keeper)]
    results += check_hives(keeper)
    failed = [result for result in results if not result["ok"]]
    text_rows = [{**row, "ok": "yes" if row["ok"] else "NO"} for row in results]
    keeper.output(results, tables.records(text_rows, COLUMNS))
    return EXIT_FAILURE if failed else EXIT_OK


def _result(check: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"check": check, "ok": ok, "detail": detail}


def check_config() -> list[dict[str, Any]]:
    results = []
    try:
        hosts = hives_conf.load()
        results.append(_result("hives.conf", True, f"{len(hosts)} remote hosts in "
                               f"{hives_conf.config_path()}"))
    except RbeeError as exc:
        results.append(_result("hives.conf", False, exc.message))
    try:
        token = cluster.current_token()
        results.append(_result("token", True, "configured" if token else "none (loopback only)"))
    except RbeeError as exc:
        results.append(_result("token", False, exc.message))
    return results


def check_queen(keeper: Keeper) -> list[dict[str, Any]]:
    try:
        with keeper.client() as client:
            if not client.is_healthy():
                return [_result("queen", False, f"nothing responds at {keeper.queen_url}; start "
                                "it with `rbee --no-tui queen start`")]
            code, result = keeper.run_job(client, {"operation": "queen_check"})
    except RbeeError as exc:
        return [_result("queen", False, exc.message)]
    detail = f"{keeper.queen_url}, version {(result or {}).get('version')}"
    return [_result("queen", code == EXIT_OK, detail)]


def check_hives(keeper: Keeper) -> list[dict[str, Any]]:
    results = []
    try:
        with keeper.client() as client:
            hives = client.hives() if client.is_healthy() else []
    except RbeeError:
        hives = []
    for hive in hives:
        results.append(_result(f"hive {hive['hive_id']}", hive["state"] == "online",
                               f"{hive['state']} at {hive['url']}"))
    try:
        hosts = hives_conf.load()
    except RbeeError:
        hosts = {}
    for host in hosts.values():
        reachable = daemons.answers_as(host.hive_url, "hive")
        results.append(_result(f"alias {host.alias}", reachable,
                               f"{host.hive_url} {'answers' if reachable else 'does not answer'}"))
    if not hives and not hosts:
        results.append(_result("hives", False, "no hive reports to the queen; start one with "
                               "`rbee --no-tui hive start`"))
    return results
