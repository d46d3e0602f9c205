"""Figures of the SMTP inbound benchmark: one record per run, medians, in-round ratios, output.

The machine is shared and noisy, so, as in the peer baseline, absolute figures are reported
as medians over rounds, and each system is compared with the references (postfix-dovecot,
aiosmtpd-fsync) by ratios taken *within one round* at one concurrency -- runs a few seconds
apart, under the same background load -- and only then reduced to the median over rounds.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REFERENCES = ("postfix-dovecot", "aiosmtpd-fsync")
SHORT = {"postfix-dovecot": "pd", "aiosmtpd-fsync": "aio"}
METRICS = ("e2e_rate", "accept_rate")


@dataclass
class RunResult:
    round: int
    position: int  # place of the system in this round's order
    system: str
    concurrency: int
    messages: int
    generator: str
    bg_busy_frac: float
    sent: int
    failed: int
    delivered: int | None  # None: the system stores nothing (smtp-sink)
    timed_out: bool
    accept_s: float
    accept_rate: float
    e2e_s: float | None
    e2e_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    peak_rss_mib: float
    pss_mib_end: float  # PSS of the process tree when the run ended
    cpu_s: float  # whole machine, during the run
    note: str = ""

    @property
    def complete(self) -> bool:
        return self.sent == self.messages and (self.delivered is None or self.delivered >= self.sent)


@dataclass
class Summary:
    system: str
    concurrency: int
    runs: int
    accept_rate: float | None
    e2e_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    peak_rss_mib: float | None
    cpu_s_per_1k: float | None
    e2e_per_run: list[float | None]
    # ratios[reference][metric]: median over rounds of the in-round ratio
    ratios: dict[str, dict[str, float | None]] = field(default_factory=dict)


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def in_round_ratios(
    runs: list[RunResult], system: str, concurrency: int, reference: str, metric: str
) -> list[float]:
    """system/reference for `metric`, one value per round where both ran."""
    by_round: dict[int, dict[str, RunResult]] = defaultdict(dict)
    for run in runs:
        if run.concurrency == concurrency:
            by_round[run.round][run.system] = run
    ratios = []
    for systems in by_round.values():
        mine, ref = systems.get(system), systems.get(reference)
        if mine is None or ref is None:
            continue
        a, b = getattr(mine, metric), getattr(ref, metric)
        if a is not None and b:
            ratios.append(a / b)
    return ratios


def summarize(runs: list[RunResult]) -> list[Summary]:
    keys = sorted({(r.system, r.concurrency) for r in runs}, key=lambda k: (k[1], k[0]))
    systems = {r.system for r in runs}
    summaries = []
    for system, concurrency in keys:
        mine = [r for r in runs if r.system == system and r.concurrency == concurrency]
        cpu = [1000 * r.cpu_s / r.sent for r in mine if r.sent]
        summary = Summary(
            system=system,
            concurrency=concurrency,
            runs=len(mine),
            accept_rate=median(r.accept_rate for r in mine),
            e2e_rate=median(r.e2e_rate for r in mine),
            p50_ms=median(r.p50_ms for r in mine),
            p99_ms=median(r.p99_ms for r in mine),
            peak_rss_mib=max((r.peak_rss_mib for r in mine), default=None),
            cpu_s_per_1k=median(cpu),
            e2e_per_run=[r.e2e_rate for r in sorted(mine, key=lambda r: r.round)],
        )
        for ref in REFERENCES:
            if ref in systems and ref != system:
                summary.ratios[ref] = {
                    m: median(in_round_ratios(runs, system, concurrency, ref, m)) for m in METRICS
                }
        summaries.append(summary)
    return summaries


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def run_line(run: RunResult) -> str:
    """One line of progress per run, printed as it ends."""
    stored = "" if run.delivered is None else f" e2e {_num(run.e2e_rate)}/s ({run.delivered} stored)"
    latency = "" if run.p50_ms is None else f" p50 {_num(run.p50_ms, 1)} p99 {_num(run.p99_ms, 1)} ms"
    flags = (
        ""
        if run.complete
        else f" INCOMPLETE (sent {run.sent}, failed {run.failed}{', timed out' if run.timed_out else ''})"
    )
    return (
        f"  round {run.round} c={run.concurrency:<3} {run.system:<16} accept {_num(run.accept_rate)}/s{stored}"
        f"{latency} rss {_num(run.peak_rss_mib, 1)} MiB bg {run.bg_busy_frac:.0%}{flags}"
        + (f" [{run.note}]" if run.note else "")
    )


def table(summaries: list[Summary], rounds: int) -> str:
    refs = [r for r in REFERENCES if any(r in s.ratios for s in summaries)]
    head = ["system", "c", "accept/s", "e2e/s", "p50 ms", "p99 ms", "RSS MiB", "CPU s/1k"]
    for ref in refs:
        head += [f"e2e/{SHORT[ref]}", f"acc/{SHORT[ref]}"]
    if rounds > 1:
        head.append("e2e/s per round")
    rows = [head]
    for s in summaries:
        row = [s.system, str(s.concurrency), _num(s.accept_rate), _num(s.e2e_rate), _num(s.p50_ms, 1)]
        row += [_num(s.p99_ms, 1), _num(s.peak_rss_mib, 1), _num(s.cpu_s_per_1k, 1)]
        for ref in refs:
            ratios = s.ratios.get(ref, {})
            row += [_ratio(ratios.get("e2e_rate")), _ratio(ratios.get("accept_rate"))]
        if rounds > 1:
            row.append(", ".join(_num(v) for v in s.e2e_per_run))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], runs: list[RunResult], summaries: list[Summary]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "meta": meta,
        "runs": [{**asdict(r), "complete": r.complete} for r in runs],
        "summary": [asdict(s) for s in summaries],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
