"""Service time of every route of the web view: one request at a time, in this process.

Run ``python benchmarks/web_service.py --library FOLDER`` (options: ``--help``).

``benchmarks/web_latency.py`` measures what 8 concurrent clients see; with one server
process (one core's worth of Python, the GIL) their p99 is about 8-10 times a route's
*service time*, the server CPU one request costs.  This script measures that service
time directly: the WSGI application :func:`leitmotiv.web.app.make_wsgi` builds (as
``leitmotiv serve`` runs it, gzip included) is called in this process, one request
at a time, with ``Accept-Encoding: gzip``, for the same routes and targets as
``web_latency.py``.  Every target is requested once unmeasured first, then
``--requests`` times in all at random; printed per route: the median and 90th
percentile of the wall time, the median CPU time of the request (this thread's,
``time.thread_time``: what the server spends, nearly independent of other jobs on the
machine) and its ratio against the baseline library (the 1,000-photo library of
``web_library.py``'s generator, made in this process).

The library is opened read-only (nothing is written).  ``--profile NAME`` prints the
cProfile of the routes whose name contains NAME on the large library.

Budgets implied by the goals with 8 clients on one process: about 5 ms per JSON
request or image, about 15 ms per HTML page.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

import web_latency  # noqa: E402
import web_library  # noqa: E402

from leitmotiv.config import Settings  # noqa: E402
from leitmotiv.library import Library  # noqa: E402
from leitmotiv.web.app import make_wsgi  # noqa: E402

BUDGET_MS = {"json": 5.0, "image": 5.0, "html": 15.0}


def call(wsgi, url: str) -> int:
    """One GET of ``url`` through ``wsgi``; returns the status code."""
    path, _, query = url.partition("?")
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "5000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_ACCEPT_ENCODING": "gzip",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    status = []
    body = wsgi(environ, lambda s, headers, exc_info=None: status.append(s))
    for _ in body:
        pass
    if hasattr(body, "close"):
        body.close()
    return int(status[0].split()[0])


def measure(folder: Path, args, profile: str | None = None) -> dict[str, dict]:
    """Per route: median and p90 service time (ms) and failed requests."""
    out = {}
    rng = random.Random(args.seed)
    route_list = web_latency.routes(folder, args.pool, args.seed)
    with Library.open(Settings(library=folder), read_only=True) as lib:
        wsgi = make_wsgi(lib)
        for route in route_list:
            pool = list(dict.fromkeys(route.url(rng) for _ in range(4 * args.pool)))
            failed = sum(call(wsgi, url) != 200 for url in pool)
            urls = [rng.choice(pool) for _ in range(args.requests)]
            profiler = cProfile.Profile() if profile and profile in route.name else None
            times, cpu = [], []
            for url in urls:
                if profiler:
                    profiler.enable()
                t0, c0 = time.perf_counter(), time.thread_time()
                call(wsgi, url)
                cpu.append(time.thread_time() - c0)
                times.append(time.perf_counter() - t0)
                if profiler:
                    profiler.disable()
            ms, cpu_ms = np.asarray(times) * 1000.0, np.asarray(cpu) * 1000.0
            out[route.name] = {
                "kind": route.kind,
                "p50": float(np.percentile(ms, 50)),
                "p90": float(np.percentile(ms, 90)),
                "cpu": float(np.percentile(cpu_ms, 50)),
                "errors": failed,
            }
            if profiler:
                print(f"\n--- profile of {route.name}")
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return out


def report(label: str, results, baseline=None) -> None:
    print(f"\n{label}")
    head = f"{'route':34s} {'p50 ms':>8s} {'p90 ms':>8s} {'CPU ms':>8s}"
    print(head + ("  CPU / 1k" if baseline else "") + "  budget (CPU)")
    for name, r in results.items():
        budget = BUDGET_MS[r["kind"]]
        verdict = "ok" if r["cpu"] <= budget and not r["errors"] else "OVER"
        ratio = f"  {r['cpu'] / baseline[name]['cpu']:7.2f}x" if baseline else ""
        failed = f"  ({r['errors']} failed)" if r["errors"] else ""
        print(
            f"{name:34s} {r['p50']:8.2f} {r['p90']:8.2f} {r['cpu']:8.2f}{ratio}  "
            f"<= {budget:.0f} ms {verdict}{failed}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, help="the library to measure (after build-index)")
    parser.add_argument("--baseline-photos", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per route")
    parser.add_argument("--pool", type=int, default=32, help="targets per route")
    parser.add_argument("--profile", metavar="NAME", help="cProfile the routes matching NAME")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"load average before: {tuple(round(x, 2) for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="leitmotiv-web-service-") as tmp:
        base_folder = Path(tmp) / "baseline"
        web_library.build(base_folder, args.baseline_photos, seed=args.seed)
        baseline = measure(base_folder, args)
        report(f"== baseline, {args.baseline_photos:,} photos", baseline)
        if args.library:
            results = measure(args.library, args, args.profile)
            report(f"== {args.library}", results, baseline)
    print(f"load average after: {tuple(round(x, 2) for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
