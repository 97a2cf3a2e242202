"""DIR/result.json, DIR/latency_over_time.png, DIR/latency_percentiles.png, DIR/summary.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from barrage.loadtest import metrics


def write(result: dict[str, Any], out: Path, command: str) -> None:
    histograms: dict[str, Any] = result.pop("_histograms", {})
    result["command"] = command
    (out / "result.json").write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    plots = _plots(result, histograms, out)
    (out / "summary.md").write_text(summary(result, plots))


def _plots(result: dict[str, Any], histograms: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: list[str] = []
    title = f"{result['scenario']}: {result['config']['viewers']} viewers, {result['config']['rate']} comments/s"
    timeline = result["timeline"]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    t = [row["t"] for row in timeline if "latency_ms" in row]
    for key, style in (("p50", "-"), ("p99", "--"), ("max", ":")):
        axes[0].plot(t, [row["latency_ms"][key] for row in timeline if "latency_ms" in row], style, label=key)
    axes[0].set_ylabel("latency ms\n(publish → receive)")
    axes[0].set_yscale("log")
    axes[0].legend(loc="upper left")
    axes[0].set_title(title)
    ts = [row["t"] for row in timeline]
    axes[1].plot(ts, [row["deliveries"] for row in timeline], label="deliveries/s")
    axes[1].plot(ts, [row["acked"] for row in timeline], label="acked sends/s")
    axes[1].set_ylabel("per second")
    axes[1].legend(loc="upper left")
    axes[2].plot(ts, [row["server_cpu_util"] for row in timeline], label="server CPU (cores)")
    axes[2].set_ylabel("server CPU (cores)")
    ax2 = axes[2].twinx()
    ax2.plot(ts, [row["server_rss_mb"] for row in timeline], "r--", label="server RSS MB")
    ax2.set_ylabel("RSS MB", color="r")
    axes[2].set_xlabel("seconds into the measured window")
    fig.tight_layout()
    fig.savefig(out / "latency_over_time.png", dpi=90)
    plt.close(fig)
    names.append("latency_over_time.png")

    fig, ax = plt.subplots(figsize=(8, 5))
    for label, hist in histograms.items():
        points = metrics.percentile_curve(hist)
        if not points:
            continue
        xs = [1.0 / max(1e-6, 1.0 - p / 100.0) for p, _ in points]
        ax.plot(xs, [ms for _, ms in points], label=f"from {label} time")
    ax.set_xscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency ms")
    ax.set_title(f"{title}\nlatency percentile distribution (HDR)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_lines():  # an ingest run decodes no events: nothing to label
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "latency_percentiles.png", dpi=90)
    plt.close(fig)
    names.append("latency_percentiles.png")
    return names


def _fmt(summary_ms: dict[str, Any]) -> str:
    if not summary_ms.get("count"):
        return "n/a"
    return f"p50 {summary_ms['p50']} / p99 {summary_ms['p99']} / max {summary_ms['max']} ms (n={summary_ms['count']})"


def summary(result: dict[str, Any], plots: list[str]) -> str:
    f = result["figures"]
    cfg = result["config"]
    lat = f["latency_ms"]
    verdict = "VALID" if result["valid"] else "INVALID (not a measure of server capacity)"
    lines = [
        f"# Load test: {result['scenario']}",
        "",
        f"`{result.get('command', '')}`",
        "",
        f"**{verdict}**" + ("" if result["valid"] else ": " + "; ".join(result["invalid_reasons"])),
        "",
        *(f"- warning: {w}" for w in result["warnings"]),
        "",
        f"Machine: {result['machine']['cpus']} × {result['machine']['cpu_model']}, "
        f"{result['machine']['memory_gib']} GiB, Linux {result['machine']['kernel']}, "
        f"Python {result['machine']['python']}; commit {result['git']['commit'][:10]}"
        + (" (dirty)" if result["git"]["dirty"] else ""),
        "",
        f"Configuration: {cfg['viewers']} viewers in {cfg['rooms']} room(s), {cfg['rate']} comments/s + "
        f"{cfg['critical_rate']} critical/s + {cfg['likes']} likes/s + {cfg['gifts']} gifts/s "
        f"for {cfg['duration']} s from {result['plan']['senders']} sender streams; "
        f"viewers by kind {result['plan']['viewers_by_kind']}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| deliveries (viewers + sender streams) | {f['deliveries']:,} in {f['window_s']} s = "
        f"{f['deliveries_per_s']:,}/s |",
        f"| server CPU | {f['server_cpu_s']} s ({f['server_cpu_util']} cores) |",
        f"| server CPU per delivery | {f['server_cpu_us_per_delivery']} µs |",
        f"| server CPU per delivered-or-omitted event | {f['server_cpu_us_per_delivered_or_omitted']} µs |",
        f"| latency from publish_time (all decoded events) | {_fmt(lat['from_publish_time'])} |",
        f"| latency from intended send time (CO-corrected) | {_fmt(lat['from_intended_send_time'])} |",
        f"| sends: sent / acked / acked per s | {f['sent']:,} / {f['acked']:,} / {f['acked_per_s']:,} |",
        f"| ack latency from intended send time | {_fmt(f['ack_latency_ms_from_intended'])} |",
        f"| sender lateness | {_fmt(f['send_lateness_ms'])} |",
        f"| critical events lost / checked | {f['critical_lost']} / {f['critical_checked']} |",
        f"| duplicates / order violations / silent gaps | {f['duplicates']} / {f['order_violations']} / "
        f"{f['silent_gaps']} |",
        f"| normal events omitted (reported by server) | {f['omitted_reported']:,} |",
        f"| not yet delivered when the run ended (all / critical) | {f.get('undelivered_at_end', 0):,} / "
        f"{f.get('critical_undelivered_at_end', 0):,} |",
        f"| acked sends missing from history | {f['acked_not_in_history']} |",
        f"| server RSS peak / end | {f['server_rss_peak_mb']} / {f['server_rss_end_mb']} MB |",
        f"| streams / RSS per stream | {f.get('streams')} / {f.get('rss_per_stream_kb')} KB |",
        f"| join latency | {_fmt(f['join_latency_ms'])} |",
        "| busiest server threads (share of one core) | "
        + ", ".join(
            f"{t['name']}{' (event loop)' if t['main'] else ''} {t['cpu_util']:.0%}"
            for t in f.get("server_threads", [])[:4]
        )
        + " |",
        "| server processes (share of one core each) | "
        + ", ".join(f"{p['pid']} {p['cpu_util']:.0%}" for p in f.get("server_processes", []) if p["cpu_util"] > 0.005)
        + (f"; each capped at {cfg['cpu_cap']} cores" if cfg.get("cpu_cap") else "")
        + " |",
        *(
            [
                f"| Kafka broker (Tansu) CPU, not in the server's | {f['broker_cpu_s']} s "
                f"({f['broker_cpu_util']} cores); "
                f"{f['broker_cpu_us_per_delivery']} µs per delivery, {f['broker_cpu_us_per_ack']} µs per ack |"
            ]
            if "broker_cpu_s" in f
            else []
        ),
        f"| client CPU | {f['client_cpu_s']} s; machine {f['machine_cpu_util']:.0%} busy; other processes "
        f"{f.get('other_processes_cpu_util', 0)} cores |",
        "",
        "Latency by viewer kind (from publish_time):",
        "",
        *(f"- {k}: {_fmt(v)}" for k, v in lat["by_viewer_kind_from_publish_time"].items()),
        "",
        "Client processes:",
        "",
        *(
            f"- {c['name']}: {c['cpu_s']} s CPU ({c['cpu_util']:.0%} of a core), loop lag p99 "
            f"{c['loop_lag_p99_ms']} ms, max {c['loop_lag_max_ms']} ms"
            for c in f["client"]
        ),
        "",
        "Happenings: " + (", ".join(f"{k} {v}" for k, v in sorted(f["happenings"].items())) or "none"),
        "",
        "Send errors: " + (", ".join(f"{k} ×{v}" for k, v in f["send_errors"].items()) or "none"),
        "",
        "Which viewers are which:",
        "",
        *(f"- **{k}**: {v}" for k, v in result["viewer_kinds"].items()),
        "",
        *(f"![{p}]({p})" for p in plots),
        "",
        *_profile_lines(result.get("profile")),
    ]
    return "\n".join(lines)


def _profile_lines(prof: dict[str, Any] | None) -> list[str]:
    if not prof or "samples" not in prof:
        return []
    lines = [
        f"## Server profile ({prof['on_cpu_samples']} on-CPU samples; {prof['waiting_samples']} waiting dropped)",
        "",
        f"`{prof.get('command', '')}`; folded stacks in `{prof.get('folded', '')}`",
        "",
        "| self % | frame (on top of the stack) | | inclusive % | frame (anywhere on the stack) |",
        "|---:|---|---|---:|---|",
    ]
    for a, b in zip(prof["self"][:20], prof["inclusive"][:20], strict=False):
        lines.append(f"| {a['percent']} | `{a['frame']}` | | {b['percent']} | `{b['frame']}` |")
    lines += ["", "| % | self time by library (native) or Python file |", "|---:|---|"]
    lines += [f"| {x['percent']} | `{x['frame']}` |" for x in prof.get("by_library", [])[:15]]
    lines += ["", "| % | native time by nearest server Python frame -> native leaf |", "|---:|---|"]
    lines += [f"| {x['percent']} | `{x['frame']}` |" for x in prof.get("native_by_python_caller", [])[:15]]
    lines.append("")
    return lines
