"""Rendering benchmark results as the Markdown page docs/benchmarks.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NOTES = Path(__file__).with_name("notes.md")


def render(machine: dict[str, Any], results: dict[str, Any], command: str, repeats: int) -> str:
    parts = [
        "# Benchmarks\n",
        f"Written by `{command}` on {machine['date']}. Each number is the median of "
        f"{repeats} runs; the spread is the minimum and maximum of those runs. Goals are in "
        "brackets; the page says whether each was met on this machine. Numbers are measured "
        "client-side on loopback, with the client on the same machine, so it shares the CPU.\n",
        _machine(machine),
    ]
    renderers = {"stack": _stack, "peer": _peer, "relay": _relay, "control": _control,
                 "tui": _tui}
    for name, renderer in renderers.items():
        if name in results:
            parts.append(renderer(results[name]))
    if NOTES.is_file():
        parts.append(NOTES.read_text(encoding="utf-8"))
    return "\n".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def _machine(machine: dict[str, Any]) -> str:
    versions = ", ".join(f"{name} {version}" for name, version in machine["versions"].items())
    return (f"Machine: {machine['cores']} cores ({machine['cpu']}), {machine['ram_gb']} GB RAM, "
            f"no GPU, {machine['os']}, Python {machine['python']}.\n\nVersions: {versions}.\n")


def _stack(result: dict[str, Any]) -> str:
    rows = [[row["path"], f"{row['ttft_ms']:.1f}", row["ttft_spread"],
             f"{row['decode_tps']:.1f}", row["decode_spread"]] for row in result["rows"]]
    base, queen = result["rows"][0], result["rows"][2]
    ratio = queen["decode_tps"] / base["decode_tps"]
    added = queen["ttft_ms"] - result["rows"][1]["ttft_ms"]
    bare = sorted(result["bare_load_s"])[len(result["bare_load_s"]) // 2]
    cold = sorted(result["cold_start_s"])[len(result["cold_start_s"]) // 2]
    return (
        "## 1. Stack overhead on the real model\n\n"
        "Gemma 3 270M Q4_K_M, a fixed prompt, 128 tokens, temperature 0, 2 threads. Time to "
        "first token (TTFT) includes prompt processing; decode rate counts tokens after the "
        "first.\n\n"
        + _table(["path", "TTFT ms", "spread", "decode tokens/s", "spread"], rows)
        + f"\n(c)/(a) decode: {ratio:.3f} [≥ 0.95: {_verdict(ratio >= 0.95)}]. "
        f"TTFT added by the queen over the worker: {added:.1f} ms "
        f"[≤ 15 ms: {_verdict(added <= 15)}].\n\n"
        "## 5. Worker cold start\n\n"
        + _table(["measure", "median s", "runs s"], [
            ["bare `Llama(...)` load in-process", f"{bare:.2f}",
             ", ".join(f"{s:.2f}" for s in result["bare_load_s"])],
            ["`worker_spawn` request to ready", f"{cold:.2f}",
             ", ".join(f"{s:.2f}" for s in result["cold_start_s"])],
        ])
        + f"\nSpawn minus bare load: {cold - bare:.2f} s [within 1 s: "
        f"{_verdict(cold - bare <= 1.0)}].\n"
    )


def _peer(result: dict[str, Any]) -> str:
    peer, rbee = result["llama_cpp_server"], result["rbee_queen"]
    rows = [
        ["`python -m llama_cpp.server`", f"{peer['single_tps']:.1f}", peer["single_spread"],
         f"{peer['concurrent_tps']:.1f}", peer["concurrent_spread"]],
        ["rbee queen `/v1/completions`", f"{rbee['single_tps']:.1f}", rbee["single_spread"],
         f"{rbee['concurrent_tps']:.1f}", rbee["concurrent_spread"]],
    ]
    single = rbee["single_tps"] > peer["single_tps"]
    concurrent = rbee["concurrent_tps"] > peer["concurrent_tps"]
    return (
        "## 2. Peer on the same library\n\n"
        "Same model and settings; aggregate tokens/s from the first request to the last token, "
        "one stream and 4 concurrent streams.\n\n"
        + _table(["server", "1 stream tokens/s", "spread", "4 streams tokens/s", "spread"], rows)
        + f"\nrbee beats the peer on one stream: {_verdict(single)}; on 4 streams: "
        f"{_verdict(concurrent)}.\n"
    )


def _relay(rows: list[dict[str, Any]]) -> str:
    table = [[str(row["streams"]), f"{row['direct_tps']:.0f}", f"{row['relayed_tps']:.0f}",
              f"{row['ratio']:.2f}", f"{row['added_p50_ms']:.2f}", f"{row['added_p99_ms']:.2f}"]
             for row in rows]
    by_streams = {row["streams"]: row for row in rows}
    goals = []
    if 64 in by_streams:
        goals.append(f"64 streams at ≥ 0.95 of direct: "
                     f"{_verdict(by_streams[64]['ratio'] >= 0.95)}")
    if 16 in by_streams:
        goals.append(f"p99 added ≤ 5 ms at 16 streams: "
                     f"{_verdict(by_streams[16]['added_p99_ms'] <= 5)}")
    return (
        "## 3. Relay capacity\n\n"
        "A benchmark-only synthetic token source (`bench/synthetic_worker.py`, one token every "
        "10 ms per stream, never used by rbee itself) streamed directly and through the "
        "queen's `/v1/completions`, 100 tokens per stream. Added latency is the relayed "
        "inter-token gap percentile minus the direct one.\n\n"
        + _table(["streams", "direct tokens/s", "relayed tokens/s", "ratio",
                  "added p50 ms", "added p99 ms"], table)
        + "\n" + "; ".join(goals) + ".\n"
    )


def _control(rows: list[dict[str, Any]]) -> str:
    table = [[str(row["hives"]), f"{row['heartbeats_per_second']:.0f}",
              f"{row['queen_cpu_cores']:.2f}", f"{row['models_p95_ms']:.1f}",
              f"{row['status_p95_ms']:.1f}"] for row in rows]
    last = rows[-1]
    met = last["queen_cpu_cores"] < 0.5 and max(last["models_p95_ms"],
                                                last["status_p95_ms"]) <= 20
    return (
        "## 4. Control plane at scale\n\n"
        "Simulated hives with 4 workers each post heartbeats every second to one queen; the "
        "load generator runs on the same 2 cores. CPU is the queen process's user+system time "
        "over 10 s.\n\n"
        + _table(["hives", "heartbeats/s sent", "queen CPU cores", "GET /v1/models p95 ms",
                  "status job p95 ms"], table)
        + f"\n{last['hives']} hives under half a core with p95 ≤ 20 ms: {_verdict(met)}.\n"
    )


def _tui(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"## 6. TUI ingest\n\nNot measured: {result['skipped']}\n"
    met = result["events_per_second"] >= 5000 and result["key_p99_ms"] <= 100
    return (
        "## 6. TUI ingest\n\n"
        "Narration events fed to the TUI's narration view in a headless run, with a key press "
        "every 50 ms.\n\n"
        + _table(["events/s absorbed", "key response p50 ms", "key response p99 ms",
                  "lines kept"], [[f"{result['events_per_second']:.0f}",
                                   f"{result['key_p50_ms']:.1f}", f"{result['key_p99_ms']:.1f}",
                                   str(result["lines_kept"])]])
        + f"\n≥ 5,000 events/s with key responses within 100 ms: {_verdict(met)}.\n"
    )
