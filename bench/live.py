"""Live benchmark: the real server on loopback, the Python client playing real footage as the webcam.

    python -m bench.live [--pose BACKEND ...] [--long] [--seconds S] [--out PATH]

Prints a table and writes bench/results/live.json. All figures come from one run on one machine:

* The server is `python server.py` in its own process (a temporary data dir: the cached models linked in, a
  reference built from the sample video `vtest.avi`, looped to the length needed). The clients run in this
  process, one `stream.client.run_session` per session, all on this event loop; the machine's 2 cores are shared
  by server, clients and whatever else runs (the CPU each used is in the results).
* The webcam is the sample footage at 640x480 and 30 fps (each 10 fps sample frame shown 3 times, as a VGA webcam
  would), with the frame's index burned into a strip at the top (`harness.frameindex`: twice, so that a misread is
  caught).
* latency_ms, per returned frame: from the moment the client's webcam track hands frame i to aiortc (before the
  client's VP8 encode) to the moment the client's returned track yields the decoded frame showing index i.
  It covers the client's encode, loopback RTP, the server's jitter buffer and decode, the newest-frame slot,
  drawing the newest skeleton, the server's encode, and the client's jitter buffer and decode.
* transport_ms: the same measure through `bench.echo`, a peer that sends each decoded frame straight back (no
  models, no drawing), one session. server_added_ms = latency percentile - transport percentile, percentile by
  percentile (an estimate: the two distributions are not independent samples of a sum).
* ticks: `kept` = ticks in the session's keypoints CSV / ticks the clock passed while playing
  (`ClientResult.elapsed_ticks`); `skipped` and `errors` from the server's last `stats` message.
* fps: webcam = frames handed to WebRTC per second, returned = frames the client's returned track yielded per
  second, both over the playing window.
* thirds: latency p50/p95 over each third of a session (by send time): flat or growing.
* cpu_cores: CPU seconds per wall second over a scenario, for the server process, this process (the clients),
  and everything else on the machine (from /proc/stat).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from bench.machine import RESULTS, describe, write_results
from harness.clips import looped_frames, write_clip
from harness.frameindex import burn_index, read_frame_index
from harness.server import ServerProcess
from pose import assets
from pose.models import BACKEND_NAMES, DEFAULT_BACKEND
from stream.client import ClientResult, run_session

log = logging.getLogger("bench.live")

ROOT = Path(__file__).resolve().parent.parent
WEBCAM_SIZE = (640, 480)
WEBCAM_FPS = 30
REFERENCE_POSE = "movenet-lightning"  # builds the reference fast; its keypoints only change the score values
START_TIMEOUT_S = 180.0
SETTLE_S = 2.0  # between scenarios: the server ends the last sessions
LONG_S = 300.0
DEFAULT_LONG_S = 60.0
DEFAULT_SHORT_S = 20.0
TRANSPORT_S = 15.0
KEEP_GOAL = 0.95
QUIET_OTHER_CORES = 0.25  # more CPU than this used by other processes during a scenario: its figures are suspect
FLAT_TOLERANCE = 0.2  # the last third's p50 within 20% (or 20 ms) of the first third's counts as flat


# ---------------------------------------------------------------------------------------------------------
# The webcam: real footage with the frame index burned in


def write_webcam_clip(video: Path, out: Path, seconds: float) -> int:
    """`seconds` of the sample at 640x480 and 30 fps (each frame 3 times), index burned in; returns the frames."""
    total = math.ceil(seconds * WEBCAM_FPS)
    repeat = WEBCAM_FPS // 10
    sample = (image for image in looped_frames(video, WEBCAM_SIZE) for _ in range(repeat))

    def indexed() -> Iterator[np.ndarray]:
        for index, image in zip(range(total), sample):
            copy = image.copy()
            burn_index(copy, index)
            yield copy

    write_clip(out, indexed(), WEBCAM_FPS)
    return total


def write_reference_source(video: Path, out: Path, seconds: float) -> Path:
    """`seconds` of the sample at its own size and 10 fps, looped as needed (MPEG-4, quick to write)."""
    frames = (image for _, image in zip(range(math.ceil(seconds * 10)), looped_frames(video)))
    return write_clip(out, frames, 10, codec="mpeg4", bit_rate=4_000_000)


def prepare_data_dir(root: Path, video: Path, reference_s: float) -> str:
    """Models linked in, one reference (`reference_s` of the sample at 10 ticks/s) built; returns its id."""
    from pose.pipeline import load_models
    from stream.references import ReferenceLibrary, new_id

    assets.ensure(assets.MODELS)
    models_dir = root / "models"
    models_dir.mkdir()
    for asset in assets.MODELS:
        (models_dir / asset.name).symlink_to(asset.path())
    source = write_reference_source(video, root / "reference-source.avi", reference_s)
    library = ReferenceLibrary(root / "references")
    meta = library.build(new_id(), source, "bench: sample footage", 10.0, load_models(root, pose=REFERENCE_POSE))
    source.unlink()
    return meta.id


# ---------------------------------------------------------------------------------------------------------
# Processes


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_s() -> float:
    """CPU seconds spent busy on all cores since boot (/proc/stat: everything but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """CPU seconds of the server, this process and the whole machine, sampled every second (loop time)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.samples: list[tuple[float, float, float, float]] = []  # (now, machine busy, server, this process)

    def sample(self) -> None:
        now = asyncio.get_running_loop().time()
        self.samples.append((now, machine_busy_s(), process_cpu_s(self.server_pid), time.process_time()))

    async def run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(1.0)

    def cores(self, start: float, end: float) -> dict[str, float] | None:
        """Cores used between the samples nearest `start` and `end`: server, clients (this process), other."""
        inside = [s for s in self.samples if start - 0.5 <= s[0] <= end + 0.5]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        (t0, busy0, server0, client0), (t1, busy1, server1, client1) = inside[0], inside[-1]
        wall, server, client = t1 - t0, server1 - server0, client1 - client0
        other = max(0.0, busy1 - busy0 - server - client)
        return {"server": round(server / wall, 2), "clients": round(client / wall, 2), "other": round(other / wall, 2)}


# ---------------------------------------------------------------------------------------------------------
# Sessions


@dataclass
class Trace:
    """Loop times of each webcam frame handed to WebRTC and of each returned frame, by burned-in index."""

    sent: dict[int, float] = field(default_factory=dict)
    received: list[tuple[int, float]] = field(default_factory=list)
    unreadable: int = 0

    def on_sent(self, frame: av.VideoFrame, now: float) -> None:
        index = read_frame_index(frame)
        if index is None:
            self.unreadable += 1
        else:
            self.sent.setdefault(index, now)

    def on_received(self, frame: av.VideoFrame, now: float) -> None:
        index = read_frame_index(frame)
        if index is None:
            self.unreadable += 1
        else:
            self.received.append((index, now))


def percentiles(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"p50": None, "p95": None, "max": None, "n": 0}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": round(float(p50), 1), "p95": round(float(p95), 1), "max": round(max(values), 1), "n": len(values)}


def rate(times: Sequence[float]) -> float:
    if len(times) < 2 or max(times) == min(times):
        return 0.0
    return (len(times) - 1) / (max(times) - min(times))


def processed_ticks(keypoints_csv: str) -> set[int]:
    rows = list(csv.reader(io.StringIO(keypoints_csv)))
    if len(rows) < 2 or "person" not in rows[0]:
        return set()
    person = rows[0].index("person")
    return {int(row[0]) for row in rows[1:] if row and row[person] == "0"}


def session_figures(result: ClientResult, trace: Trace, seconds: float, cpu: CpuSampler) -> dict[str, Any]:
    """Latency, frame rates and ticks of one session, over its playing window (the first `seconds` after the
    first webcam frame)."""
    if not trace.sent:
        raise RuntimeError(f"session {result.session}: no webcam frame was read back")
    start = min(trace.sent.values())
    end = start + seconds
    sent = {i: t for i, t in trace.sent.items() if t <= end}
    matched: list[tuple[float, float]] = []  # (send time, latency ms)
    seen: set[int] = set()
    for index, received_at in trace.received:
        if index in sent and index not in seen:
            seen.add(index)
            matched.append((sent[index], 1000 * (received_at - sent[index])))
    latencies = [ms for _, ms in matched]
    thirds = []
    for third in range(3):
        low, high = start + third * seconds / 3, start + (third + 1) * seconds / 3
        thirds.append(percentiles([ms for at, ms in matched if low <= at < high]) | {"cpu_cores": cpu.cores(low, high)})
    received_times = [t for _, t in trace.received if start <= t <= end]
    figures: dict[str, Any] = {
        "latency_ms": percentiles(latencies),
        "thirds_ms": thirds,
        "webcam_fps": round(rate(list(sent.values())), 2),
        "returned_fps": round(rate(received_times), 2),
        "frames_sent": len(sent),
        "frames_returned": len(matched),
        "returned_share": round(len(matched) / len(sent), 4) if sent else 0.0,
        "unreadable_frames": trace.unreadable,
    }
    elapsed = set(result.elapsed_ticks()) if result.fps > 0 else set()
    processed = processed_ticks(result.keypoints_csv)
    if elapsed and result.stats is not None:
        figures["ticks"] = {
            "elapsed": len(elapsed),
            "processed": len(processed & elapsed),
            "kept": round(len(processed & elapsed) / len(elapsed), 4),
            "skipped": result.stats.get("skipped"),
            "errors": result.stats.get("errors"),
            "inference_ms": result.stats.get("inference_ms"),
            "server_fps": result.stats.get("fps"),
            "server_webcam_fps": result.stats.get("webcam_fps"),
        }
    return figures


@dataclass(frozen=True)
class Scenario:
    name: str
    sessions: int
    fps: float | None  # None: the reference's own
    seconds: float


async def run_scenario(
    service: ServerProcess, clip: Path, reference: str, scenario: Scenario, pose: str | None = None
) -> dict[str, Any]:
    """`pose`: the sessions' pose backend (the reference was extracted with REFERENCE_POSE, which sessions would
    otherwise default to); None for the echo peer."""
    traces = [Trace() for _ in range(scenario.sessions)]
    busy0, server0, client0, wall0 = (
        machine_busy_s(),
        process_cpu_s(service.process.pid),
        time.process_time(),
        time.monotonic(),
    )
    cpu = CpuSampler(service.process.pid)
    sampler = asyncio.create_task(cpu.run())
    try:
        results = await asyncio.gather(
            *(
                run_session(
                    service.url,
                    clip,
                    reference,
                    seconds=scenario.seconds,
                    fps=scenario.fps,
                    pose=pose,
                    on_sent=trace.on_sent,
                    on_received=trace.on_received,
                )
                for trace in traces
            )
        )
    finally:
        sampler.cancel()
    if pose is not None and {r.pose for r in results} != {pose}:
        raise RuntimeError(f"sessions ran {sorted({r.pose for r in results})}, not {pose}")
    cpu.sample()
    wall = time.monotonic() - wall0
    server = process_cpu_s(service.process.pid) - server0
    client = time.process_time() - client0
    other = machine_busy_s() - busy0 - server - client
    sessions = [session_figures(r, t, scenario.seconds, cpu) for r, t in zip(results, traces, strict=True)]
    latencies = _pooled_latencies(results, traces, scenario.seconds)
    figures: dict[str, Any] = {
        "name": scenario.name,
        "sessions": scenario.sessions,
        "fps": scenario.fps,
        "seconds": scenario.seconds,
        "latency_ms": percentiles(latencies),
        "cpu_cores": {"server": round(server / wall, 2), "clients": round(client / wall, 2)}
        | {"other": round(max(0.0, other) / wall, 2), "wall_s": round(wall, 1)},
        "per_session": sessions,
    }
    kept = [s["ticks"]["kept"] for s in sessions if "ticks" in s]
    if kept:
        figures["kept_min"], figures["kept_mean"] = min(kept), round(sum(kept) / len(kept), 4)
    inference = [s["ticks"]["inference_ms"] for s in sessions if s.get("ticks", {}).get("inference_ms") is not None]
    if inference:
        figures["inference_ms"] = round(float(np.mean(inference)), 1)
    figures["quiet"] = figures["cpu_cores"]["other"] <= QUIET_OTHER_CORES
    figures["webcam_fps"] = round(float(np.mean([s["webcam_fps"] for s in sessions])), 2)
    figures["returned_fps"] = round(float(np.mean([s["returned_fps"] for s in sessions])), 2)
    return figures


def _pooled_latencies(results: Sequence[ClientResult], traces: Sequence[Trace], seconds: float) -> list[float]:
    pooled: list[float] = []
    for trace in traces:
        start = min(trace.sent.values())
        seen: set[int] = set()
        for index, received_at in trace.received:
            sent_at = trace.sent.get(index)
            if sent_at is not None and sent_at <= start + seconds and index not in seen:
                seen.add(index)
                pooled.append(1000 * (received_at - sent_at))
    return pooled


# ---------------------------------------------------------------------------------------------------------
# The run


def scenarios(long_s: float, short_s: float) -> list[Scenario]:
    return [
        Scenario("1 session, F=10, long", 1, 10.0, long_s),
        Scenario("1 session, F=5", 1, 5.0, short_s),
        Scenario("2 sessions, F=5", 2, 5.0, short_s),
        Scenario("2 sessions, F=10", 2, 10.0, short_s),
        Scenario("3 sessions, F=5", 3, 5.0, short_s),
        Scenario("3 sessions, F=10", 3, 10.0, short_s),
    ]


def server_added(latency: dict[str, Any], transport: dict[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in ("p50", "p95"):
        a, b = latency.get(key), transport.get(key)
        out[key] = None if a is None or b is None else round(a - b, 1)
    return out


def flat(thirds: Sequence[dict[str, Any]]) -> bool | None:
    first, last = thirds[0]["p50"], thirds[-1]["p50"]
    if first is None or last is None:
        return None
    return bool(last - first <= max(FLAT_TOLERANCE * first, 20.0))


async def run(backends: Sequence[str], long_s: float, short_s: float, work: Path) -> dict[str, Any]:
    video = assets.SAMPLE_VIDEO.path()
    assets.ensure((assets.SAMPLE_VIDEO,))
    longest = max(long_s, short_s, TRANSPORT_S)
    started = time.monotonic()
    clip = work / "webcam.mp4"
    frames = write_webcam_clip(video, clip, longest + 5)
    log.warning("webcam clip: %d frames (%.0f s)", frames, time.monotonic() - started)
    data_dir = work / "data"
    data_dir.mkdir()
    reference = prepare_data_dir(data_dir, video, longest + 5)
    log.warning("reference built (%.0f s)", time.monotonic() - started)
    figures: dict[str, Any] = {"machine": describe() | {"load_average_at_start": list(os.getloadavg())}}
    figures["setup"] = {
        "webcam": {"size": list(WEBCAM_SIZE), "fps": WEBCAM_FPS, "source": video.name, "frames": frames},
        "reference": {"fps": 10.0, "seconds": longest + 5, "built_with": REFERENCE_POSE},
        "clients": "in the benchmark's process, one run_session per session on one event loop",
        "server": "python server.py --pose BACKEND --no-seed --max-sessions 3 --admit-load 1000 (no admission by"
        " load: the scenarios go past it on purpose; default live workers), own process",
    }

    echo = ServerProcess.start(["-m", "bench.echo"], work / "echo.log", "echo", START_TIMEOUT_S)
    try:
        transport = await run_scenario(echo, clip, "echo", Scenario("transport (echo)", 1, 10.0, TRANSPORT_S))
    finally:
        echo.stop()
    transport.pop("fps")
    figures["transport"] = transport
    log.warning("transport: %s", transport["latency_ms"])

    figures["backends"] = {}
    for backend in backends:
        args = ["server.py", "--data-dir", str(data_dir), "--pose", backend, "--no-seed", "--max-sessions", "3"]
        args += ["--admit-load", "1000"]
        server = ServerProcess.start(args, work / f"server-{backend}.log", f"server ({backend})", START_TIMEOUT_S)
        results = []
        try:
            for scenario in scenarios(long_s, short_s):
                await asyncio.sleep(SETTLE_S)
                result = await run_scenario(server, clip, reference, scenario, pose=backend)
                result["server_added_ms"] = server_added(result["latency_ms"], transport["latency_ms"])
                log.warning("%s %s: %s", backend, scenario.name, _summary(result))
                results.append(result)
        finally:
            server.stop()
        long_run = results[0]
        figures["backends"][backend] = {
            "scenarios": results,
            "goals": {
                "one_session_f10_kept": long_run.get("kept_min"),
                "one_session_f10_ok": long_run.get("kept_min", 0) >= KEEP_GOAL,
                "two_sessions_f5_kept_min": results[2].get("kept_min"),
                "two_sessions_f5_ok": results[2].get("kept_min", 0) >= KEEP_GOAL,
                "latency_thirds_p50_ms": [t["p50"] for t in long_run["per_session"][0]["thirds_ms"]],
                "latency_flat": flat(long_run["per_session"][0]["thirds_ms"]),
                "long_session_s": long_s,
            },
        }
    figures["machine"]["load_average_at_end"] = list(os.getloadavg())
    figures["total_s"] = round(time.monotonic() - started, 1)
    return figures


def _summary(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    return f"kept {result.get('kept_min')} latency p50 {lat['p50']} p95 {lat['p95']} cpu {result['cpu_cores']}"


def table(figures: dict[str, Any]) -> str:
    transport = figures["transport"]["latency_ms"]
    lines = [
        f"transport (echo peer, 1 session): latency p50 {transport['p50']} ms, p95 {transport['p95']} ms",
        "",
        f"{'backend':<18}{'scenario':<24}{'kept min':>9}{'skipped':>8}{'lat p50':>8}{'p95':>6}"
        f"{'added p50':>10}{'p95':>6}{'cam fps':>8}{'ret fps':>8}{'inf ms':>7}{'cpu srv':>8}{'cli':>5}{'other':>6}",
    ]
    for backend, data in figures["backends"].items():
        for s in data["scenarios"]:
            skipped = sum(p.get("ticks", {}).get("skipped") or 0 for p in s["per_session"])
            kept = s.get("kept_min")
            lines.append(
                f"{backend:<18}{s['name']:<24}{(f'{kept:.1%}' if kept is not None else '-'):>9}{skipped:>8}"
                f"{_ms(s['latency_ms']['p50']):>8}{_ms(s['latency_ms']['p95']):>6}"
                f"{_ms(s['server_added_ms']['p50']):>10}{_ms(s['server_added_ms']['p95']):>6}"
                f"{s['webcam_fps']:>8.1f}{s['returned_fps']:>8.1f}{_ms(s.get('inference_ms')):>7}"
                f"{s['cpu_cores']['server']:>8.2f}{s['cpu_cores']['clients']:>5.2f}{s['cpu_cores']['other']:>6.2f}"
                + ("" if s["quiet"] else "  (machine busy)")
            )
        goals = data["goals"]
        thirds = " / ".join(_ms(v) for v in goals["latency_thirds_p50_ms"])
        others = [(t.get("cpu_cores") or {}).get("other") for t in data["scenarios"][0]["per_session"][0]["thirds_ms"]]
        thirds += " ms (other processes: " + " / ".join("-" if o is None else f"{o:.2f}" for o in others) + " cores)"
        lines.append(
            f"{'':<18}latency p50 by third of the {goals['long_session_s']:g} s session: {thirds} "
            f"({'flat' if goals['latency_flat'] else 'GROWING'}); goals: 1xF10 "
            f"{'ok' if goals['one_session_f10_ok'] else 'MISSED'}, "
            f"2xF5 {'ok' if goals['two_sessions_f5_ok'] else 'MISSED'}"
        )
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--pose",
        action="append",
        choices=BACKEND_NAMES,
        help=f"pose backend to run the server with (repeatable; default {DEFAULT_BACKEND}, and tfpose if different)",
    )
    parser.add_argument("--long", action="store_true", help=f"the long session lasts {LONG_S:g} s (default 60 s)")
    parser.add_argument("--long-seconds", type=float, help="the long session's length in seconds (overrides --long)")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SHORT_S, help="the other sessions (default 20 s)")
    parser.add_argument("--out", type=Path, default=RESULTS / "live.json", help="where the JSON goes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    backends = args.pose or list(dict.fromkeys([DEFAULT_BACKEND, "tfpose"]))
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        long_s = args.long_seconds or (LONG_S if args.long else DEFAULT_LONG_S)
        figures = asyncio.run(run(backends, long_s, args.seconds, Path(tmp)))
    write_results(figures, args.out)
    print(table(figures))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
