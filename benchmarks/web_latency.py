"""Latency of every route of ``leitmotiv serve`` under load, at 1,000 and 100,000 photos.

Run ``python benchmarks/web_latency.py --library FOLDER`` (options: ``--help``).

Libraries: FOLDER is any library (e.g. the 100,000-photo one that
``benchmarks/web_library.py`` writes, or a real one after ``build-index``); the
baseline, made in this process each run, is a 1,000-photo library written by
``web_library.py``'s generator (``--baseline-photos``).

For each library, ``leitmotiv serve`` runs as a subprocess on 127.0.0.1 (waitress,
``--threads`` worker threads, by default as many as ``serve`` runs, in ``--processes``
processes, default 1) and, route by route,
``--clients`` threads (default 8; with ``--client-processes`` processes, one per
client, as separate browsers are), each with its own keep-alive ``http.client``
connection and ``Accept-Encoding: gzip`` as a browser sends it, send ``--requests``
requests in all for targets drawn at random (photos, clusters, motif periods, pages)
from a pool of ``--pool`` per route.  Every URL of the pool is requested once first
(so renders and averages, made on first request and then cached in the library's
folder, are measured as served from that cache; so are the database pages the
server's connections read).  Printed per route: p50, p99 and max latency, throughput,
and the p99 ratio against the baseline library.

With ``--split-cores`` each library is measured twice: the server and the clients
sharing the machine's cores, then the server pinned to core 0 and the clients to core
1 (``os.sched_setaffinity`` in the server's ``preexec_fn`` and in this process before
the client threads start), so that client work does not take server time.

The map's routes (when the library has a map, see :mod:`leitmotiv.layout`): the page,
``/api/map`` of the whole map, and viewports of 1/4, 1/16, 1/64 and 1/256 of the map's
side centred on photos (the deeper, the fewer photos inside), each with the default
limit.  ``--routes TEXT`` measures only the routes whose name contains TEXT (e.g.
``--routes map``).

Goals at 100,000 photos: p99 <= 50 ms for every JSON route and image, <= 150 ms for
every HTML page.
"""

from __future__ import annotations

import argparse
import http.client
import math
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

import web_library  # noqa: E402

from leitmotiv import layout, store  # noqa: E402
from leitmotiv.config import Settings  # noqa: E402
from leitmotiv.library import Library  # noqa: E402
from leitmotiv.web.app import (  # noqa: E402
    CLUSTERS_PER_PAGE,
    MOTIFS_PER_PAGE,
    PHOTOS_PER_PAGE,
    content_key,
    thumb_url,
)

GOAL_MS = {"json": 50.0, "image": 50.0, "html": 150.0}
#: Viewports of /api/map measured, as fractions of the map's side: 1/4, 1/16, ...
MAP_ZOOMS = (4, 16, 64, 256)


@dataclass(frozen=True)
class Route:
    """A route to measure: its name, kind (html, json or image) and URL maker."""

    name: str
    kind: str
    url: Callable[[random.Random], str]


def routes(folder: Path, pool: int, seed: int) -> list[Route]:
    """The routes of the library at ``folder``, each with a pool of ``pool`` targets."""
    rng = random.Random(seed)
    with Library.open(Settings(library=folder), read_only=True) as lib:
        n_photos = lib.count_photos()
        with store.bound(lib.db):
            ids = [
                pid
                for (pid,) in store.Photo.select(store.Photo.id).order_by(store.Photo.id).tuples()
            ]
        photos = list(lib.photos_by_id(rng.sample(ids, min(pool, len(ids)))).values())
        run = lib.summary()
        summaries = lib.cluster_summaries()
        clusters = rng.sample(summaries, min(pool, len(summaries)))
        periods = [
            (c.cluster_id, p.label)
            for c in lib.cluster_summaries(0, pool, by_motif=True)
            for p in c.periods[:2]
        ]
        featurizer_key = lib.featurizer.key()
        info = layout.map_info(lib.context)
        whole = lib.map_points((-math.inf, -math.inf, math.inf, math.inf), pool)
        centres = [(p.x, p.y) for p in whole.points] if whole else []
        # The photo each of the last pages starts after: the cursor of its "next" link.
        photo_pages = max(1, -(-n_photos // PHOTOS_PER_PAGE))
        cursors = {
            page: lib.photos(offset=(page - 1) * PHOTOS_PER_PAGE - 1, limit=1)[0].id
            for page in range(max(2, photo_pages - pool + 1), photo_pages + 1)
        }

    def pick(items):
        chosen = items[:pool]
        return lambda r: r.choice(chosen)

    photo = pick(photos)
    cluster = pick(clusters)
    period = pick(periods)
    cluster_pages = max(1, -(-run.n_clusters // CLUSTERS_PER_PAGE))
    motif_pages = max(1, -(-run.n_clusters // MOTIFS_PER_PAGE))
    deep = pick([photo_pages - i for i in range(min(pool, photo_pages))])
    deep_cursor = pick(sorted(cursors.items()) or [(1, 0)])
    deep_clusters = pick([cluster_pages - i for i in range(min(pool, cluster_pages))])
    deep_motifs = pick([motif_pages - i for i in range(min(pool, motif_pages))])

    def render_url(p) -> str:
        return f"/photo/{p.id}/render.png?v={content_key(featurizer_key, p.sha256)}"

    def average_url(c) -> str:
        return f"/clusters/{c.cluster_id}/average.png?v={c.average_key}"

    def box(side: float):
        """A viewport ``side`` times the map's longer side, around a photo."""
        min_x, min_y, max_x, max_y = info[2:6]
        span = max(max_x - min_x, max_y - min_y) * side / 2
        pick_centre = pick(centres)

        def url(r) -> str:
            x, y = pick_centre(r)
            return f"/api/map?bbox={x - span:.6f},{y - span:.6f},{x + span:.6f},{y + span:.6f}"

        return url

    map_routes = []
    if info is not None and centres:
        map_routes = [
            Route("map page", "html", lambda r: "/map"),
            Route("/api/map, whole map", "json", lambda r: "/api/map"),
            *(Route(f"/api/map, 1/{zoom} of the map", "json", box(1 / zoom)) for zoom in MAP_ZOOMS),
        ]
    return [
        *map_routes,
        Route("photos grid, page 1", "html", lambda r: "/"),
        Route("photos grid, last pages", "html", lambda r: f"/?page={deep(r)}"),
        Route(
            "photos grid, last pages by cursor",
            "html",
            lambda r: "/?page={}&after={}".format(*deep_cursor(r)),
        ),
        Route("/api/photos", "json", lambda r: "/api/photos"),
        Route(
            "/api/photos, last offsets",
            "json",
            lambda r: f"/api/photos?offset={(deep(r) - 1) * PHOTOS_PER_PAGE}&limit=60",
        ),
        Route(
            "/api/photos, last pages by cursor",
            "json",
            lambda r: f"/api/photos?after={deep_cursor(r)[1]}&limit=60",
        ),
        Route("photo and its ranking", "html", lambda r: f"/photo/{photo(r).id}"),
        Route("/api/photos/<id>", "json", lambda r: f"/api/photos/{photo(r).id}"),
        Route(
            "/api/photos/<id>/similar?top=10",
            "json",
            lambda r: f"/api/photos/{photo(r).id}/similar?top=10",
        ),
        Route("model page", "html", lambda r: f"/photo/{photo(r).id}/model"),
        Route("/api/photos/<id>/model", "json", lambda r: f"/api/photos/{photo(r).id}/model"),
        Route("clusters, page 1", "html", lambda r: "/clusters"),
        Route("clusters, last pages", "html", lambda r: f"/clusters?page={deep_clusters(r)}"),
        Route("/api/clusters", "json", lambda r: "/api/clusters"),
        Route("a cluster", "html", lambda r: f"/clusters/{cluster(r).cluster_id}"),
        Route("/api/clusters/<id>", "json", lambda r: f"/api/clusters/{cluster(r).cluster_id}"),
        Route("motifs, page 1", "html", lambda r: "/motifs"),
        Route("motifs, last pages", "html", lambda r: f"/motifs?page={deep_motifs(r)}"),
        Route("/api/motifs", "json", lambda r: "/api/motifs"),
        # A library of undated photos has no periods to show.
        *(
            [Route("a motif's period", "html", lambda r: "/motifs/{}/{}".format(*period(r)))]
            if periods
            else []
        ),
        Route("thumbnail", "image", lambda r: thumb_url(photo(r))),
        Route("render (cached)", "image", lambda r: render_url(photo(r))),
        Route("average (cached)", "image", lambda r: average_url(cluster(r))),
    ]


# ------------------------------------------------------------------ the load


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(port: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"leitmotiv serve exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("leitmotiv serve did not start")


def _client(port: int, urls: list[str], out: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        for url in urls:
            t0 = time.perf_counter()
            conn.request("GET", url, headers={"Accept-Encoding": "gzip"})
            reply = conn.getresponse()
            reply.read()
            out.append(time.perf_counter() - t0)
            if reply.status != 200:
                errors.append(f"{url}: HTTP {reply.status}")
    finally:
        conn.close()


def _client_process(port: int, urls: list[str], start, replies) -> None:
    """One client in a process of its own: waits for ``start``, then sends ``urls`` and
    puts its latencies and errors on ``replies``."""
    out: list[float] = []
    errors: list[str] = []
    start.wait()
    try:
        _client(port, urls, out, errors)
    finally:
        replies.put((out, errors))


def _load(
    port: int, urls: list[str], clients: int, processes: bool = False
) -> tuple[list[float], float, list[str]]:
    """Send ``urls`` from ``clients`` concurrent connections: latencies, wall, errors.

    The clients are threads of this process, or with ``processes`` one process each
    (forked, started together), as separate browsers are: threads share this
    process's interpreter lock, so a reply that has arrived can wait for another
    client's parsing, which the latency then counts.
    """
    if processes:
        context = multiprocessing.get_context("fork")
        start, replies = context.Event(), context.Queue()
        workers = [
            context.Process(target=_client_process, args=(port, urls[c::clients], start, replies))
            for c in range(clients)
        ]
        for worker in workers:
            worker.start()
        t0 = time.perf_counter()
        start.set()
        found = [replies.get() for _ in workers]
        wall = time.perf_counter() - t0
        for worker in workers:
            worker.join()
        latencies = [x for out, _ in found for x in out]
        return latencies, wall, [e for _, errors in found for e in errors]
    results: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    threads = [
        threading.Thread(target=_client, args=(port, urls[c::clients], results[c], errors))
        for c in range(clients)
    ]
    t0 = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [x for out in results for x in out], time.perf_counter() - t0, errors


def measure(folder: Path, args, pinned: bool) -> dict[str, dict[str, float]]:
    """Per route: p50, p99, max (ms), requests/s and failed requests."""
    # Defaults only: neither the user's config file nor LEITMOTIV_* variables may
    # change the implementation keys the rows were stored under.
    config = folder.parent / f"{folder.name}-config.toml"
    config.write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEITMOTIV_")}
    port = _free_port()
    command = [sys.executable, "-m", "leitmotiv", "-c", str(config), "--library"]
    command += [str(folder), "serve", "--port", str(port), "--processes", str(args.processes)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    cores = sorted(os.sched_getaffinity(0))
    server_cores = {cores[0]} if pinned else set(cores)
    client_cores = {cores[-1]} if pinned else set(cores)
    log = open(folder.parent / f"{folder.name}-serve.log", "w", encoding="utf-8")
    process = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        preexec_fn=lambda: os.sched_setaffinity(0, server_cores),
    )
    previous = os.sched_getaffinity(0)
    out = {}
    try:
        _wait_until_up(port, process)
        os.sched_setaffinity(0, client_cores)
        rng = random.Random(args.seed)
        for route in routes(folder, args.pool, args.seed):
            if args.routes and args.routes not in route.name:
                continue
            pool = list(dict.fromkeys(route.url(rng) for _ in range(4 * args.pool)))
            _load(port, pool, 1)  # warm: every target once
            urls = [rng.choice(pool) for _ in range(args.requests)]
            latencies, wall, errors = _load(port, urls, args.clients, args.client_processes)
            ms = np.asarray(latencies) * 1000.0
            out[route.name] = {
                "kind": route.kind,
                "p50": float(np.percentile(ms, 50)),
                "p99": float(np.percentile(ms, 99)),
                "max": float(ms.max()),
                "rate": len(ms) / wall,
                "errors": len(errors),
            }
            if errors:
                print(f"  {route.name}: {len(errors)} failed, e.g. {errors[0]}", flush=True)
    finally:
        os.sched_setaffinity(0, previous)
        process.terminate()
        process.wait(timeout=30)
        log.close()
    return out


def report(label: str, results, baseline=None) -> None:
    print(f"\n{label}")
    head = f"{'route':34s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s} {'req/s':>7s}"
    print(head + ("  p99 / 1k" if baseline else "") + "  goal")
    for name, r in results.items():
        goal = GOAL_MS[r["kind"]]
        verdict = "ok" if r["p99"] <= goal and not r["errors"] else "MISSES"
        ratio = f"  {r['p99'] / baseline[name]['p99']:7.2f}x" if baseline else ""
        print(
            f"{name:34s} {r['p50']:8.1f} {r['p99']:8.1f} {r['max']:8.1f} {r['rate']:7.0f}"
            f"{ratio}  <= {goal:.0f} ms {verdict}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, help="the library to measure (after build-index)")
    parser.add_argument("--baseline-photos", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive clients")
    parser.add_argument("--requests", type=int, default=400, help="requests per route")
    parser.add_argument("--pool", type=int, default=64, help="targets per route")
    parser.add_argument(
        "--threads", type=int, help="server worker threads (default: serve's default)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="server processes (serve --processes)"
    )
    parser.add_argument("--split-cores", action="store_true", help="also pin server and clients")
    parser.add_argument(
        "--client-processes",
        action="store_true",
        help="each client in a process of its own (default: threads of this process)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--routes", help="measure only the routes whose name contains this")
    args = parser.parse_args(argv)
    modes = [False, True] if args.split_cores else [False]
    with tempfile.TemporaryDirectory(prefix="leitmotiv-web-latency-") as tmp:
        base_folder = Path(tmp) / "baseline"
        t = time.perf_counter()
        stats = web_library.build(base_folder, args.baseline_photos, seed=args.seed)
        print(
            f"baseline library: {args.baseline_photos:,} photos, {stats['clusters']:.0f} "
            f"clusters, {stats['distance_rows']:,.0f} distances "
            f"({time.perf_counter() - t:.0f} s to write)"
        )
        print(
            f"{args.requests} requests per route from {args.clients} keep-alive clients "
            f"({'one process each' if args.client_processes else 'threads of one process'}), "
            f"{args.processes} server process(es) of {args.threads or 'the default'} waitress "
            "threads; "
            f"load average before: {os.getloadavg()}"
        )
        for pinned in modes:
            how = (
                "server on core 0, clients on core 1"
                if pinned
                else "server and clients share cores"
            )
            baseline = measure(base_folder, args, pinned)
            report(f"== baseline, {args.baseline_photos:,} photos ({how})", baseline)
            if args.library:
                with Library.open(Settings(library=args.library), read_only=True) as lib:
                    n = lib.count_photos()
                    run = lib.summary()
                results = measure(args.library, args, pinned)
                clusters = run.n_clusters if run else 0
                report(
                    f"== {args.library}: {n:,} photos, {clusters:,} clusters ({how})",
                    results,
                    baseline,
                )
        print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
