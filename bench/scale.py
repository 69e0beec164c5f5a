"""Scale benchmark: how many live sessions one server holds at F=10 with >= 95% of ticks kept, and where their
CPU goes.

    python -m bench.scale [--seconds S] [--max-sessions N] [--min-steps N] [--mode keypoints|annotated ...]
                          [--balancer] [--budget CORES] [--out PATH]

Prints a table and writes bench/results/scale.json. The set-up is bench.live's: the real server in its own
process (`python server.py`, admission by load switched off with a huge --admit-load so that the ramp can pass
the point where it would refuse), the Python clients (`stream.client.run_session`, real WebRTC) in this process,
the sample footage at 640x480 and 30 fps as the webcam with the frame index burned in, a reference at 10 ticks/s.

For each mode (`keypoints`: keypoints-only sessions, no returned video; `annotated`: the annotated track, the
default) the ramp runs 1, 2, 3, ... sessions at once at F=10 for S seconds each and stops after the first step
where a session kept fewer than 95% of its ticks, but runs at least --min-steps (3) steps (`held`: the largest
number of sessions up to which every step kept >= 95%). Per step:

* ticks kept per session (ticks in its keypoint CSV / ticks the clock passed while playing), min and mean;
* tick_ms: each session's tick time (analysis of one tick on the server) p50 and p95 from its record, averaged
  over the sessions, and p95 - p50;
* stages_ms_per_s: per session, the time each stage took (stream.stages, from the session's record) per second of
  session, averaged over the sessions (decode is the CPU time of its decoder thread; the others wall time);
* threads: the server's CPU per thread group over the step, cores (from /proc: aiortc's decoder threads, the
  live-inference workers, the loop's default executor, where aiortc encodes the returned tracks, TensorFlow's
  own threads, and the event loop);
* hops (ms, p50 / p95 over the step's ticks): `tick_lag`, from the client handing the webcam frame at a tick's
  time to aiortc to that tick's `score` message arriving; `server_tick`, the server's analysis of the tick;
  `rest` = tick_lag - server_tick at the same percentile (the client's encode, loopback, the server's jitter
  buffer and decode, the wait for the mailbox and a worker, the data channel). With the annotated track also
  `video`: a frame's round trip, handed to aiortc to received back annotated (bench.live's latency);
* gauge: the admission gauge's view at the step's last admission (stream.load, from the server log): load,
  predicted cost of one more session, and the sessions a 0.9 threshold would admit at that cost.

Two servers behind a load balancer (`--balancer`): `ramp` takes any base URL, so `behind_balancer` runs the same
keypoints-only ramp through HAProxy in front of two servers on one PostgreSQL (harness.cluster).

A CPU budget per server (`--budget CORES`, bench.budget): every server process runs in its own cgroup limited to
CORES, the clients outside it. One machine cannot give two servers twice the CPU of one and still run their
clients; with equal budgets the comparison is the one a second machine would make: what one more server adds on
the same CPU per server. Each step also records the share of its wall time the servers were held back by the
quota (`throttled`).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.budget import BudgetUnavailable, CpuBudget
from bench.live import (
    START_TIMEOUT_S,
    CpuSampler,
    Trace,
    machine_busy_s,
    percentiles,
    prepare_data_dir,
    process_cpu_s,
    processed_ticks,
    session_figures,
    write_webcam_clip,
)
from bench.machine import RESULTS, describe, write_results
from harness.server import ServerProcess
from pose import assets
from stream.client import ClientResult, run_session
from stream.load import LoadPolicy

log = logging.getLogger("bench.scale")

ROOT = Path(__file__).resolve().parent.parent
FPS = 10.0
WEBCAM_FPS = 30
KEEP_GOAL = 0.95
SETTLE_S = 2.0
DEFAULT_SECONDS = 15.0
DEFAULT_MAX = {"keypoints": 9, "annotated": 6}
ADMISSION_OFF = "1000"  # --admit-load: the ramp must be able to pass what admission would allow
ADMITTED = re.compile(r"admitted at load (\{.*\})")
THREAD_GROUPS = (  # (group, how a thread's name starts); the first match wins, the rest is "tensorflow"
    ("decode", ("video-decoder", "audio-decoder")),
    ("inference", ("live-inference",)),
    ("executor", ("asyncio_",)),  # aiortc's encoder, and asyncio.to_thread calls
    ("jobs", ("reference-job",)),
)


# ---------------------------------------------------------------------------------------------------------
# The server's threads


def thread_cpu_s(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds of each thread of `pid`, with its name."""
    ticks = os.sysconf("SC_CLK_TCK")
    threads: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
        threads[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / ticks)
    return threads


class ThreadSampler:
    """The CPU seconds of every thread of a process, sampled every second, as last seen: a session's decoder
    thread ends with it, before the step's figures are taken."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before = thread_cpu_s(pid)
        self.seen = dict(self.before)

    def sample(self) -> None:
        self.seen |= thread_cpu_s(self.pid)

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(1.0)

    def groups(self, wall: float) -> dict[str, float]:
        self.sample()
        return thread_groups(self.pid, self.before, self.seen, wall)


def thread_groups(
    pid: int, before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], wall: float
) -> dict[str, float]:
    """Cores used by each thread group from `before` to `after` (threads started since count from zero)."""
    groups: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        spent = cpu - (before[tid][1] if tid in before else 0.0)
        group = "event_loop" if tid == pid else next((g for g, p in THREAD_GROUPS if name.startswith(p)), "tensorflow")
        groups[group] = groups.get(group, 0.0) + spent
    return {group: round(cpu / wall, 3) for group, cpu in sorted(groups.items())}


# ---------------------------------------------------------------------------------------------------------
# One step: n sessions at once


@dataclass(frozen=True)
class Target:
    """Where sessions go (a server or a balancer) and the server processes whose CPU is theirs."""

    url: str
    pids: tuple[int, ...]
    logs: tuple[Path, ...] = ()
    budgets: tuple[CpuBudget, ...] = ()


def tick_lags(result: ClientResult, trace: Trace) -> list[float]:
    """ms from handing the webcam frame at each scored tick's time to aiortc to that tick's score arriving."""
    lags = []
    for tick, received in result.score_times.items():
        frame = math.ceil(tick / result.reference_fps * WEBCAM_FPS - 1e-9)
        sent = trace.sent.get(frame)
        if sent is not None:
            lags.append(1000 * (received - sent))
    return lags


def last_admission(logs: Sequence[Path], since: int) -> dict[str, Any] | None:
    """The gauge's snapshot in the last 'admitted at load' line after byte `since` of the first log."""
    if not logs:
        return None
    text = logs[0].read_bytes()[since:].decode(errors="replace")
    found = ADMITTED.findall(text)
    return ast.literal_eval(found[-1]) if found else None


async def gather_sessions(
    target: Target, clip: Path, reference: str, traces: list[Trace], seconds: float, annotated: bool
) -> list[ClientResult]:
    sessions = (
        run_session(
            target.url,
            clip,
            reference,
            seconds=seconds,
            fps=FPS,
            returned_video=annotated,
            on_sent=trace.on_sent,
            on_received=trace.on_received if annotated else None,
        )
        for trace in traces
    )
    return list(await asyncio.gather(*sessions))


async def run_step(
    target: Target, clip: Path, reference: str, sessions: int, seconds: float, annotated: bool
) -> dict[str, Any]:
    traces = [Trace() for _ in range(sessions)]
    log_start = target.logs[0].stat().st_size if target.logs else 0
    threads = [ThreadSampler(pid) for pid in target.pids]
    sampling = [asyncio.create_task(t.run()) for t in threads]
    throttled0 = [b.throttled_s() for b in target.budgets]
    busy0, server0, client0, wall0 = (
        machine_busy_s(),
        sum(process_cpu_s(p) for p in target.pids),
        time.process_time(),
        time.monotonic(),
    )
    try:
        results = await gather_sessions(target, clip, reference, traces, seconds, annotated)
    finally:
        for task in sampling:
            task.cancel()
    wall = time.monotonic() - wall0
    server = sum(process_cpu_s(p) for p in target.pids) - server0
    client = time.process_time() - client0
    other = max(0.0, machine_busy_s() - busy0 - server - client)
    throttled = [b.throttled_s() - t for b, t in zip(target.budgets, throttled0, strict=True)]
    kept: list[float] = []
    lags: list[float] = []
    p50s: list[float] = []
    p95s: list[float] = []
    stages: dict[str, list[float]] = {}
    video: list[dict[str, Any]] = []
    for result, trace in zip(results, traces, strict=True):
        elapsed = set(result.elapsed_ticks())
        if elapsed:
            kept.append(len(processed_ticks(result.keypoints_csv) & elapsed) / len(elapsed))
        lags += tick_lags(result, trace)
        tick_ms = result.metadata.get("tick_ms") or {}
        if tick_ms.get("p50") is not None:
            p50s.append(tick_ms["p50"])
            p95s.append(tick_ms["p95"])
        length = max(1e-9, (result.clock_end or 0.0) - (result.clock_start or 0.0))
        for stage, ms in (result.metadata.get("stages_ms") or {}).items():
            stages.setdefault(stage, []).append(ms / length)
        if annotated:
            video.append(session_figures(result, trace, seconds, CpuSampler(target.pids[0]))["latency_ms"])
    lag, tick = percentiles(lags), {"p50": _mean(p50s), "p95": _mean(p95s)}
    spread = _difference(tick["p95"], tick["p50"])
    figures: dict[str, Any] = {
        "sessions": sessions,
        "mode": "annotated" if annotated else "keypoints",
        "seconds": seconds,
        "kept_min": round(min(kept), 4) if kept else None,
        "kept_mean": round(float(np.mean(kept)), 4) if kept else None,
        "tick_ms": tick | {"spread": spread},
        "stages_ms_per_s": {stage: round(float(np.mean(v)), 1) for stage, v in stages.items()},
        "cpu_cores": {
            "server": round(server / wall, 2),
            "clients": round(client / wall, 2),
            "other": round(other / wall, 2),
            "wall_s": round(wall, 1),
        },
        "server_per_session_cores": round(server / wall / sessions, 3),
        "throttled": [round(t / wall, 3) for t in throttled],
        "threads": {str(t.pid): t.groups(wall) for t in threads},
        "hops_ms": {
            "tick_lag": lag,
            "server_tick": tick,
            "rest": {k: _difference(lag[k], tick[k]) for k in ("p50", "p95")},
        },
        "gauge": _gauge(last_admission(target.logs, log_start)),
    }
    if annotated:
        figures["hops_ms"]["video"] = {k: _mean([v[k] for v in video if v[k] is not None]) for k in ("p50", "p95")}
    return figures


def _gauge(snapshot: dict[str, Any] | None) -> dict[str, Any] | None:
    if snapshot is None:
        return None
    cost = snapshot.get("session_cost")
    threshold = LoadPolicy().threshold
    would_admit = None if not cost else math.floor(threshold / cost + 1e-9)
    return {"load": snapshot.get("load"), "session_cost": cost, "capacity_at_default_threshold": would_admit}


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 1)


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 1) if values else None


async def ramp(
    target: Target,
    clip: Path,
    reference: str,
    annotated: bool,
    seconds: float,
    most: int,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    least: int = 1,
) -> dict[str, Any]:
    """1, 2, ... `most` sessions at once until a session keeps fewer than KEEP_GOAL of its ticks, but at least
    `least` steps (so a busy machine still shows what sessions cost by stage and how that grows)."""
    steps: list[dict[str, Any]] = []
    held = 0
    for sessions in range(1, most + 1):
        await asyncio.sleep(SETTLE_S)
        step = await run_step(target, clip, reference, sessions, seconds, annotated)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        failed = step["kept_min"] is None or step["kept_min"] < KEEP_GOAL
        if not failed and held == sessions - 1:
            held = sessions
        if failed and sessions >= least:
            break
    return {"held": held, "reached_max": held == most, "steps": steps}


# ---------------------------------------------------------------------------------------------------------
# Two servers behind a balancer


async def behind_balancer(
    work: Path, data_dir: Path, clip: Path, reference: str, seconds: float, most: int, budget: float | None
) -> dict[str, Any]:
    """The ramp through HAProxy in front of two servers sharing `data_dir` and one PostgreSQL
    (`harness.cluster.Cluster`), their two processes' CPU counted together, each in its own `budget`."""
    from harness.cluster import Cluster

    args = ["--admit-load", ADMISSION_OFF, "--max-sessions", "64"]
    cluster = await asyncio.to_thread(Cluster.start, data_dir, work / "cluster", 2, args)
    budgets = [CpuBudget(f"dancesync-server{k}", budget) for k in range(2)] if budget else []
    try:
        pids = tuple(server.process.pid for server in cluster.servers)
        for limit, pid in zip(budgets, pids):
            limit.add(pid)
        target = Target(cluster.url, pids, tuple(server.log for server in cluster.servers), tuple(budgets))
        return await ramp(
            target, clip, reference, False, seconds, most, lambda step: log.warning("two servers %s", _line(step))
        )
    finally:
        await asyncio.to_thread(cluster.stop)
        for limit in budgets:
            limit.close()


# ---------------------------------------------------------------------------------------------------------
# The run


async def run(
    modes: Sequence[str],
    seconds: float,
    most: dict[str, int],
    least: int,
    work: Path,
    balancer: bool,
    budget: float | None,
) -> dict[str, Any]:
    started = time.monotonic()
    video = assets.SAMPLE_VIDEO.path()
    assets.ensure((assets.SAMPLE_VIDEO,))
    clip = work / "webcam.mp4"
    frames = write_webcam_clip(video, clip, seconds + 5)
    data_dir = work / "data"
    data_dir.mkdir()
    reference = prepare_data_dir(data_dir, video, seconds + 5)
    log.warning("webcam clip of %d frames and the reference ready (%.0f s)", frames, time.monotonic() - started)
    figures: dict[str, Any] = {"machine": describe() | {"load_average_at_start": list(os.getloadavg())}}
    figures["setup"] = {
        "webcam": {"size": [640, 480], "fps": WEBCAM_FPS, "frames": frames},
        "fps": FPS,
        "seconds": seconds,
        "server": f"python server.py --no-seed --max-sessions 64 --admit-load {ADMISSION_OFF}, own process",
        "clients": "in the benchmark's process, one run_session per session on one event loop",
        "budget_cores_per_server": budget,
    }
    figures["one_server"] = {}
    args = ["server.py", "--data-dir", str(data_dir), "--no-seed", "--max-sessions", "64"]
    args += ["--admit-load", ADMISSION_OFF]
    server_log = work / "server.log"
    server = ServerProcess.start(args, server_log, "server", START_TIMEOUT_S)
    limit = CpuBudget("dancesync-server", budget) if budget else None
    try:
        if limit is not None:
            limit.add(server.process.pid)
        target = Target(server.url, (server.process.pid,), (server_log,), (limit,) if limit else ())
        for mode in modes:
            annotated = mode == "annotated"
            figures["one_server"][mode] = await ramp(
                *(target, clip, reference, annotated, seconds, most[mode]),
                lambda step: log.warning("%s", _line(step)),
                least=least,
            )
    finally:
        server.stop()
        if limit is not None:
            limit.close()
    if balancer:
        figures["two_servers"] = await behind_balancer(
            work, data_dir, clip, reference, seconds, 2 * most["keypoints"], budget
        )
    else:
        figures["two_servers"] = {"skipped": "not asked for (--balancer)"}
    figures["machine"]["load_average_at_end"] = list(os.getloadavg())
    figures["total_s"] = round(time.monotonic() - started, 1)
    return figures


def _line(step: dict[str, Any]) -> str:
    lag, tick, cpu = step["hops_ms"]["tick_lag"], step["tick_ms"], step["cpu_cores"]
    kept = "-" if step["kept_min"] is None else f"{step['kept_min']:.1%}"
    return (
        f"{step['mode']:<10}{step['sessions']:>3} sessions  kept min {kept:>6}"
        f"  tick p50 {tick['p50']} p95 {tick['p95']}"
        f"  lag p50 {lag['p50']} p95 {lag['p95']}  cores server {cpu['server']} clients {cpu['clients']}"
        f" other {cpu['other']}"
    )


def table(figures: dict[str, Any]) -> str:
    lines = [f"load average at start {figures['machine']['load_average_at_start']}"]
    for mode, data in figures["one_server"].items():
        lines += [_line(step) for step in data["steps"]]
        lines.append(f"{mode}: {data['held']} sessions held at F=10 with >= {KEEP_GOAL:.0%} of ticks")
    lines.append(f"two servers: {figures['two_servers'].get('skipped') or figures['two_servers'].get('held')}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="each step's sessions (default 15 s)")
    parser.add_argument(
        "--mode", action="append", choices=("keypoints", "annotated"), help="(repeatable; default both)"
    )
    parser.add_argument("--max-sessions", type=int, help="the ramp's last step (default 9 keypoints-only, 6 annotated)")
    parser.add_argument(
        "--balancer", action="store_true", help="also run two servers behind the cluster harness's balancer"
    )
    parser.add_argument(
        "--budget", type=float, help="CPU cores each server process may use (a cgroup quota; default: no limit)"
    )
    parser.add_argument("--min-steps", type=int, default=3, help="run at least this many steps (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale.json", help="where the JSON goes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    modes = args.mode or ["keypoints", "annotated"]
    most = {mode: args.max_sessions or DEFAULT_MAX[mode] for mode in DEFAULT_MAX}
    if args.budget:
        try:
            CpuBudget("dancesync-probe", args.budget).close()
        except BudgetUnavailable as exc:
            write_results({"machine": describe(), "skipped": f"--budget: {exc}"}, args.out)
            print(f"skipped: {exc}")
            return
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        figures = asyncio.run(run(modes, args.seconds, most, args.min_steps, Path(tmp), args.balancer, args.budget))
    write_results(figures, args.out)
    print(table(figures))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
