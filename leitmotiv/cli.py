"""The ``leitmotiv`` command line.

Each command parses its arguments, calls the library and prints: human-readable
output by default, ``--json`` for scripts.  Heavy modules are imported inside the
commands so that ``leitmotiv --help`` is instant.  User errors exit with status 2
and a one-line message; failures while working exit 1; a Python traceback is shown
only with ``--debug``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shlex
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import click

from leitmotiv.config import ConfigError, Settings, is_database_url, load_settings

log = logging.getLogger("leitmotiv")


class LeitmotivGroup(click.Group):
    """A click group that turns unexpected exceptions into a one-line error."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted; run the same command again to resume", err=True)
            sys.exit(130)
        except BrokenPipeError:
            # Whoever read the output has gone (``leitmotiv photos | head``): stop
            # quietly, as Unix tools do, with the status of a process killed by SIGPIPE;
            # standard output goes nowhere, so the flush at exit cannot fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(128 + signal.SIGPIPE)
        except Exception as exc:
            if ctx.obj is not None and ctx.obj.debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


#: Commands that only read the library: they work on a library whose folder is
#: read-only (then opening it read-only).  Every other command may write.
READING_COMMANDS = frozenset(
    {"photos", "similar", "clusters", "motifs", "failures", "duplicates", "render", "average"}
    | {"serve"}
)


class AppContext:
    """What every command gets: the settings and, lazily, the opened library: to write
    (:attr:`library`) or only to read (:attr:`reader`).

    ``library_flag`` is the ``--library`` value when the command line gave one;
    ``reads_only`` says the command only reads: a read-only library folder is then
    opened read-only instead of refused.
    """

    def __init__(
        self,
        settings: Settings,
        debug: bool,
        library_flag: str | None = None,
        reads_only: bool = False,
    ) -> None:
        self.settings = settings
        self.debug = debug
        self.library_flag = library_flag
        self.reads_only = reads_only
        self._library = None
        self._reader = None

    @property
    def library(self):
        """The library of ``settings.library``, opened on first use.

        Raises
        ------
        click.UsageError
            If the command writes and the library folder is read-only.
        """
        if self._library is None:
            from leitmotiv.library import Library
            from leitmotiv.store import ReadOnlyLibrary

            try:
                self._library = Library.open(self.settings, read_only=self.reads_only)
            except ReadOnlyLibrary as exc:
                raise click.UsageError(str(exc)) from None
        return self._library

    @property
    def reader(self):
        """The library of ``settings.library``, opened read-only on first use: the
        commands that only read never write to it."""
        if self._reader is None:
            from leitmotiv.library import Library

            self._reader = Library.open(self.settings, read_only=True)
        return self._reader

    def command(self, args: str) -> str:
        """``leitmotiv ARGS`` as the user should type it for this library (with
        ``--library`` when they chose the library that way)."""
        if not self.library_flag:
            return f"leitmotiv {args}"
        shown = self.library_flag
        if is_database_url(shown):
            from leitmotiv.store import masked_url

            shown = masked_url(shown)  # never print a password
        return f"leitmotiv --library {shlex.quote(shown)} {args}"

    def has_database(self) -> bool:
        """Whether the library's database exists (looking creates nothing)."""
        from leitmotiv import store

        return store.database_exists(self.settings.database, Path(self.settings.library))

    def library_to_read(self):
        """The library for a read command, or None when it holds no photos yet.

        None comes after a message on standard error that says what to run.  A read
        never creates a database: a folder without one is reported as empty.
        """
        folder = Path(self.settings.library)
        if self.has_database() and self.reader.count_photos():
            return self.reader
        click.echo(
            f"no photos in the library {folder} yet: add some with "
            f"`{self.command('add-directory FOLDER')}`, then run `{self.command('build-index')}`",
            err=True,
        )
        return None

    def say_not_indexed(self) -> None:
        """Tell the user, on standard error, that the library needs ``build-index``."""
        click.echo(
            f"the library {self.settings.library} is not indexed yet: run "
            f"`{self.command('build-index')}`",
            err=True,
        )


pass_app = click.make_pass_decorator(AppContext)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on standard output."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _show_undecodable_names() -> None:
    """Make standard output and error write U+FFFD for the bytes of a file name that
    are not valid UTF-8 (see :mod:`leitmotiv.paths`), so that printing such a path, in
    a table, a message or JSON, never fails and never emits invalid UTF-8."""
    from leitmotiv.paths import SHOWN_ERRORS

    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors=SHOWN_ERRORS)


def _check_implementations(settings: Settings) -> None:
    """Refuse unknown plugin names or parameters before any work is done."""
    from leitmotiv.plugins import UnknownImplementation, get_implementation

    for kind in ("featurizer", "divergence", "clusterer"):
        try:
            get_implementation(kind, getattr(settings, kind), settings.params_for(kind))
        except (UnknownImplementation, ValueError) as exc:
            raise click.UsageError(str(exc)) from None


@click.group(cls=LeitmotivGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML config file (default: LEITMOTIV_CONFIG or the user config file).",
)
@click.option("-d", "--debug", is_flag=True, help="Show debug logs and full tracebacks.")
@click.option(
    "--library",
    metavar="DIR|URL",
    help="Library folder (default: LEITMOTIV_LIBRARY, the config file, or the user data "
    "folder), or a database URL (postgresql://user@host/db), taken as the database setting.",
)
@click.option("--featurizer", help="Featurizer plugin to use (see `leitmotiv plugins`).")
@click.option("--divergence", help="Divergence plugin to use.")
@click.option("--clusterer", help="Clusterer plugin to use.")
@click.version_option(package_name="leitmotiv")
@click.pass_context
def cli(ctx, config_path, debug, library, featurizer, divergence, clusterer):
    """leitmotiv: find the recurring motifs in a photo collection."""
    _show_undecodable_names()
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    overrides = {
        "library": library,
        "featurizer": featurizer,
        "divergence": divergence,
        "clusterer": clusterer,
    }
    try:
        settings = load_settings(config_path, overrides=overrides)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.obj = AppContext(
        settings,
        debug,
        library_flag=library,
        reads_only=ctx.invoked_subcommand in READING_COMMANDS,
    )
    if ctx.invoked_subcommand not in (None, "plugins"):
        _check_implementations(settings)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins(as_json):
    """List installed featurizers, divergences and clusterers."""
    from dataclasses import asdict

    from leitmotiv.plugins import list_implementations

    rows = list_implementations()
    if as_json:
        emit_json([asdict(row) for row in rows])
        return
    for row in rows:
        click.echo(f"{row.kind:<11} {row.name:<16} {row.package} {row.version}")
        for key, default in row.params.items():
            click.echo(f"    {key} = {default!r}  ({row.ranges[key]})")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option(
    "--threads",
    default=2,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Worker threads answering requests (in each process). Python runs one at a "
    "time, so more threads only interleave requests and lengthen each one's wait; two "
    "let a slow request (a search, a first render) leave the quick ones a thread.",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Server processes sharing the port, each with its own threads and connection "
    "to the library (Python runs one thread at a time per process).",
)
@pass_app
def serve(app, host, port, threads, processes):
    """Serve the web view of the library with waitress (a production WSGI server).

    It listens on 127.0.0.1 only, unless --host says otherwise: the view shows file
    paths and serves the original photos, so exposing it is a deliberate choice.
    """
    from leitmotiv.library import Library

    settings = app.settings
    _serve(
        lambda: Library.open(settings, read_only=True),
        settings.library,
        host,
        port,
        threads,
        processes,
    )


def _listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (waitress makes it listen)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _serve(
    open_library, folder: Path, host: str, port: int, threads: int, processes: int = 1
) -> None:
    """Run the web view with waitress until interrupted.

    ``open_library()`` opens the library (read-only); with several ``processes``, each
    child opens its own after the fork (it never uses the parent's connection) and they
    all accept connections on one socket, which the kernel hands to whichever process
    is waiting.  Python runs one thread at a time per process, so on several cores
    several processes answer more requests at once; each keeps its own in-memory image
    cache.
    """
    import waitress

    from leitmotiv.web.app import make_wsgi

    wsgi_app = make_wsgi(open_library())  # this process's, opened first: errors show now
    try:
        sock = _listening_socket(host, port)
        address = sock.getsockname()
    except (OSError, UnicodeError) as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    children = []
    for _ in range(processes - 1):
        pid = os.fork()
        if pid == 0:  # a child: serve until stopped, never return into the CLI
            try:
                waitress.serve(make_wsgi(open_library()), sockets=[sock], threads=threads)
            except KeyboardInterrupt:
                pass
            finally:
                os._exit(0)
        children.append(pid)
    if children:
        # Stopped by a signal too (a service manager's SIGTERM), this process stops
        # its children on the way out.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server = waitress.create_server(wsgi_app, sockets=[sock], threads=threads)
    shown_host = f"[{host}]" if ":" in host else host
    how = f" ({processes} processes)" if processes > 1 else ""
    click.echo(f"Serving {folder} on http://{shown_host}:{address[1]}/{how}")
    click.echo("Press Ctrl+C to stop.")
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.close()
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)


# -- library commands ------------------------------------------------------------------


def _jobs_option(func):
    return click.option(
        "-j",
        "--jobs",
        type=click.IntRange(min=0),
        default=None,
        help="Worker processes (default: the `jobs` setting; 0 means all cores).",
    )(func)


def _json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON.")(func)


def _dask_option(func):
    return click.option(
        "--dask",
        metavar="ADDRESS",
        help="Run the work on Dask: a scheduler address (tcp://host:8786) or 'local' for "
        "a local cluster of --jobs worker processes. Needs leitmotiv[dask].",
    )(func)


def _jobs(app: AppContext, jobs: int | None) -> int:
    return app.settings.jobs if jobs is None else jobs


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _verbose_option(func):
    return click.option(
        "-v", "--verbose", is_flag=True, help="List every ignored file with the reason."
    )(func)


def _report_ingest(report, as_json: bool, verbose: bool = False) -> None:
    """Print an ingest report (with ``verbose``, each ignored file and why); exit with
    status 1 if some files failed."""
    if as_json:
        emit_json(
            {
                "added": report.added,
                "updated": report.updated,
                "moved": report.moved,
                "unchanged": report.unchanged,
                "ignored": report.ignored,
                "failed": report.failed,
                "seconds": round(report.seconds, 3),
                "failures": [{"path": f.path, "reason": f.reason} for f in report.failures],
                "ignored_files": [
                    {"path": f.path, "reason": f.reason} for f in report.ignored_files
                ],
            }
        )
    elif verbose:
        for skipped in report.ignored_files:
            click.echo(f"ignored {skipped.path}: {skipped.reason}")
    for failure in report.failures:
        click.echo(f"{failure.path}: {failure.reason}", err=True)
    if not as_json:
        click.echo(
            f"added {report.added}, updated {report.updated}, moved {report.moved}, "
            f"unchanged {report.unchanged}, ignored {report.ignored}, "
            f"failed {report.failed} in {report.seconds:.1f} s"
        )
    if report.failed:
        raise click.exceptions.Exit(1)


def _photo_or_usage_error(app: AppContext, text: str, param: str = "PHOTO"):
    photo = app.reader.find_photo(text)
    if photo is None:
        raise click.BadParameter(
            f"no photo {text!r} in the library (give an id or a path)", param_hint=param
        )
    return photo


@cli.command("add-image")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_jobs_option
@_dask_option
@_json_option
@_verbose_option
@pass_app
def add_image(app, paths, jobs, dask, as_json, verbose):
    """Add photo files to the library (unchanged files are skipped)."""
    for path in paths:
        if path.is_dir():
            raise click.BadParameter(f"{path} is a folder; use add-directory", param_hint="PATH")
    report = app.library.add(paths, recursive=False, jobs=_jobs(app, jobs), dask=dask)
    _report_ingest(report, as_json, verbose)


@cli.command("add-directory")
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option("--no-recursive", is_flag=True, help="Do not walk sub-folders.")
@_jobs_option
@_dask_option
@_json_option
@_verbose_option
@pass_app
def add_directory(app, folders, no_recursive, jobs, dask, as_json, verbose):
    """Add the photos in folders (and their sub-folders) to the library, incrementally."""
    report = app.library.add(folders, recursive=not no_recursive, jobs=_jobs(app, jobs), dask=dask)
    _report_ingest(report, as_json, verbose)


@cli.command("build-index")
@click.option(
    "--index",
    "method",
    type=click.Choice(["auto", "dense", "sparse"]),
    help="dense: every pair; sparse: each photo and its --neighbours candidates; "
    "auto (default): dense up to the dense_limit setting (2000 photos).",
)
@click.option(
    "--neighbours",
    type=click.IntRange(min=1),
    help="Candidates per photo of the sparse index (default: the setting, 50).",
)
@click.option(
    "--recluster",
    is_flag=True,
    help="Cluster the whole library again (a sparse index otherwise places photos "
    "added since the last full clustering in the kept clusters, up to 10 % growth).",
)
@_jobs_option
@_dask_option
@_json_option
@pass_app
def build_index(app, method, neighbours, recluster, jobs, dask, as_json):
    """Compute the missing distances and recluster the library.

    Every step commits as it goes: an interrupted build resumes where it stopped.
    """
    changes = {"index": method, "neighbours": neighbours}
    app.settings = dataclasses.replace(
        app.settings, **{k: v for k, v in changes.items() if v is not None}
    )
    from leitmotiv.interfaces import SparseIndexUnavailable

    try:
        report = app.library.build_index(jobs=_jobs(app, jobs), dask=dask, recluster=recluster)
    except SparseIndexUnavailable as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        emit_json(
            {
                "pairs_computed": report.pairs_computed,
                "n_photos": report.n_photos,
                "n_clusters": report.n_clusters,
                "refit": report.refit,
                "failed": report.failed,
                "seconds": round(report.seconds, 3),
                "method": report.method,
                "new_lists": report.new_lists,
                "changed_lists": report.changed_lists,
                "clustering": report.clustering,
                "candidate_seconds": round(report.candidate_seconds, 3),
                "distance_seconds": round(report.distance_seconds, 3),
                "cluster_seconds": round(report.cluster_seconds, 3),
                "peak_memory_mib": round(report.peak_memory_mib, 1),
                "duplicates_changed": report.duplicates_changed,
                "layout": report.layout,
                "layout_seconds": round(report.layout_seconds, 3),
            }
        )
    else:
        click.echo(
            f"indexed {_count(report.n_photos, 'photo')} ({report.method}): "
            f"{_count(report.pairs_computed, 'new pair')}, {_count(report.n_clusters, 'cluster')} "
            f"in {report.seconds:.1f} s, peak memory {report.peak_memory_mib:.0f} MiB"
            + (
                f" ({_count(report.failed, 'photo')} could not be refitted)"
                if report.failed
                else ""
            )
        )
    if report.failed:
        raise click.exceptions.Exit(1)


@cli.command()
@_json_option
@pass_app
def photos(app, as_json):
    """List the photos by date captured (unknown dates last)."""
    library = app.library_to_read()
    if library is None:
        _print_nothing(as_json)
        return
    rows = [
        {
            "id": p.id,
            "path": p.path,
            "taken": _iso(p.taken),
            "taken_source": p.taken_source,
            "width": p.width,
            "height": p.height,
            "components": p.components,
        }
        for p in library.photos()
    ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['id']:>6}  {row['taken'] or '-':<26}  {row['path']}")


def _print_nothing(as_json: bool) -> None:
    """The output of a listing with nothing in it: ``[]`` for --json, else nothing."""
    if as_json:
        emit_json([])


@cli.command()
@click.argument("photo")
@click.option(
    "--top",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many neighbours to list.",
)
@_json_option
@pass_app
def similar(app, photo, top, as_json):
    """List the photos most similar to PHOTO, nearest first.

    PHOTO is a library photo (an id or a path) or any photo file outside the library,
    which is decoded and fitted in memory for this search only (nothing is stored).
    """
    from leitmotiv.imaging import DecodeError, decode
    from leitmotiv.paths import shown

    library = app.library_to_read()
    found = library.find_photo(photo) if library is not None else None
    path = Path(photo).expanduser()
    if found is not None:
        ranking = library.similar(found.id, top=top)
    elif os.path.lexists(path):
        # Anything at the path is tried as a photo, so that a folder, a pipe or a broken
        # link is refused for what it is.  An empty library ranks nothing, but the
        # file is still checked.
        try:
            if library is not None:
                ranking = library.similar_to_file(path, top=top)
            else:
                decode(path)
                ranking = []
        except DecodeError as exc:
            raise click.BadParameter(str(exc), param_hint="PHOTO") from None
    else:
        raise click.BadParameter(
            f"no photo {shown(photo)!r} in the library and no such file (give an id or a "
            "path)",
            param_hint="PHOTO",
        )
    rows = [
        {
            "id": p.id,
            "path": p.path,
            "distance": d,
            "relation": library.relation(d),
            "in_library": found is not None,
        }
        for p, d in ranking
    ]
    if not rows and library is not None and library.count_photos() > 1 and not library.clusters():
        app.say_not_indexed()
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['distance']:.4f}  {row['relation']:<14}  {row['id']:>6}  {row['path']}")


class _PositiveDistance(click.ParamType):
    """A distance above zero: a finite number (``nan`` and ``inf`` are refused)."""

    name = "distance"

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not (math.isfinite(number) and number > 0):
            self.fail(f"{value!r} is not a positive finite distance", param, ctx)
        return number


POSITIVE_DISTANCE = _PositiveDistance()


#: Columns of ``leitmotiv duplicates --csv``: one row per photo, keeper first.
DUPLICATE_CSV_FIELDS = (
    "group",
    "role",
    "id",
    "path",
    "distance",
    "reason",
    "width",
    "height",
    "size",
    "sharpness",
    "taken",
)


@cli.command()
@click.option(
    "--threshold",
    type=POSITIVE_DISTANCE,
    help="Group photos closer than this distance (default: the divergence's calibrated "
    "near-duplicate threshold, whose groups build-index stores).",
)
@_json_option
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV, one row per photo.")
@pass_app
def duplicates(app, threshold, as_json, as_csv):
    """List groups of near-duplicates, largest first, with a suggested keeper.

    The keeper has the most pixels, then is the sharpest, then was captured first;
    every other member is within the threshold of the keeper itself, and is listed
    with its distance to it.  Nothing is deleted or moved.
    """
    from leitmotiv.web.app import duplicate_group_json

    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    library = app.library_to_read()
    if library is None:
        _print_nothing(as_json)
        return
    if threshold is None and library.near_duplicate_threshold() is None:
        raise click.UsageError(
            f"the divergence {app.settings.divergence!r} has no calibrated near-duplicate "
            "threshold with these parameters: give --threshold"
        )
    found = library.duplicates(threshold)
    if not found and not library.clusters():
        app.say_not_indexed()
    rows = [duplicate_group_json(group) for group in found]
    if as_json:
        emit_json(rows)
    elif as_csv:
        _duplicates_csv(rows)
    else:
        for number, row in enumerate(rows, 1):
            keeper = row["keeper"]
            click.echo(
                f"group {number} ({_count(row['size'], 'photo')}): keep {keeper['id']} "
                f"({row['reason']})  {keeper['path']}"
            )
            for member in row["members"]:
                click.echo(f"  {member['distance']:.4f}  {member['id']:>6}  {member['path']}")


def _duplicates_csv(rows: list[dict[str, Any]]) -> None:
    """The groups as CSV on standard output, one row per photo, keeper first."""
    import csv

    writer = csv.DictWriter(sys.stdout, fieldnames=DUPLICATE_CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for number, row in enumerate(rows, 1):
        photos = [(row["keeper"], "keeper", 0.0, row["reason"])]
        photos += [(m, "member", m["distance"], "") for m in row["members"]]
        for photo, role, distance, reason in photos:
            writer.writerow(
                {
                    "group": number,
                    "role": role,
                    "distance": distance,
                    "reason": reason,
                    **{k: photo[k] for k in DUPLICATE_CSV_FIELDS[2:] if k in photo},
                }
            )


@cli.command()
@_json_option
@pass_app
def clusters(app, as_json):
    """List the clusters of the current index with their exemplar first."""
    library = app.library_to_read()
    found = library.clusters() if library is not None else []
    if library is not None and not found:
        app.say_not_indexed()
    rows = [
        {
            "id": c.id,
            "exemplar": {"id": c.exemplar.id, "path": c.exemplar.path},
            "members": [{"id": p.id, "path": p.path} for p in c.members],
        }
        for c in found
    ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"cluster {row['id']} ({_count(len(row['members']), 'photo')})")
        for member in row["members"]:
            click.echo(f"  {member['id']:>6}  {member['path']}")


@cli.command()
@_json_option
@pass_app
def failures(app, as_json):
    """List the files that could not be added, with the reason."""
    found = app.reader.failures() if app.has_database() else []
    rows = [{"path": f.path, "reason": f.reason, "time": _iso(f.time)} for f in found]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        click.echo(f"{row['path']}: {row['reason']}")


def _png_options(func):
    """The ``-o/--output`` PNG file and ``--size`` options of the rendering commands."""
    func = click.option(
        "--size",
        type=click.IntRange(min=1),
        default=256,
        show_default=True,
        help="Long side of the image, in pixels.",
    )(func)
    return click.option(
        "-o",
        "--output",
        "out",
        required=True,
        type=click.Path(dir_okay=False, path_type=Path),
        help="PNG file to write.",
    )(func)


def _write_png(data: bytes, out: Path) -> None:
    try:
        out.write_bytes(data)
    except OSError as exc:
        raise click.FileError(str(out), hint=exc.strerror or str(exc)) from None
    click.echo(f"wrote {out}")


@cli.command()
@click.argument("photo")
@_png_options
@pass_app
def render(app, photo, out, size):
    """Render PHOTO's model back to an image (its expected colour at every pixel)."""
    found = _photo_or_usage_error(app, photo)
    data = app.reader.render(found.id, long_side=size)
    if data is None:
        raise click.ClickException(f"photo {found.id} has no model yet; run add-image again")
    _write_png(data, out)


@cli.command()
@click.argument("cluster", type=int)
@_png_options
@pass_app
def average(app, cluster, out, size):
    """Render the average model of CLUSTER's photos (see `leitmotiv clusters`)."""
    data = app.reader.average(cluster, long_side=size)
    if data is None:
        raise click.BadParameter(f"no cluster {cluster} in the current index", param_hint="CLUSTER")
    _write_png(data, out)


@cli.command()
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Library folder for the demo (default: the --library folder, else 'demo' in the "
    "user data folder).",
)
@click.option("--no-serve", is_flag=True, help="Stop after indexing and print what was found.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535))
@_jobs_option
@pass_app
def demo(app, folder, no_serve, host, port, jobs):
    """Build a library from the bundled sample photos and serve it.

    The 25 sample photos (six public-domain and CC0 scenes, some photographed again
    over the years, dated by their EXIF) are added to their own library (the --library
    folder if given), indexed and clustered; a second run reuses the work.
    """
    from dataclasses import replace

    from leitmotiv.config import user_data_dir
    from leitmotiv.library import Library
    from leitmotiv.samples import sample_photos

    # Only an explicit folder: the configured library is the user's own photos.
    flag = app.library_flag
    given = Path(flag) if flag and not is_database_url(flag) else None
    folder = (folder or given or user_data_dir() / "demo").resolve()
    settings = replace(app.settings, library=folder, database=None)
    library = Library.open(settings)
    click.echo(f"Building the demo library in {folder} ...")
    added = library.add(sample_photos(), jobs=_jobs(app, jobs))
    index = library.build_index(jobs=_jobs(app, jobs))
    clusters = library.clusters()
    click.echo(
        f"{_count(library.count_photos(), 'photo')} ({added.added} new), "
        f"{_count(index.pairs_computed, 'new distance')}, {_count(len(clusters), 'cluster')}:"
    )
    for cluster in clusters:
        names = ", ".join(Path(p.path).name for p in cluster.members)
        click.echo(f"  cluster {cluster.id}: {names}")
    query = f"leitmotiv --library {shlex.quote(str(folder))}"
    click.echo(
        f"The demo library is {folder}; query it with `{query} photos` "
        f"(or motifs, clusters, similar PHOTO)."
    )
    if not no_serve:
        library.close()
        _serve(lambda: Library.open(settings, read_only=True), folder, host, port, threads=8)


def _date_bound(end: bool):
    """A click callback parsing YYYY, YYYY-MM, YYYY-MM-DD or an ISO datetime."""

    def parse(ctx, param, value):
        from leitmotiv.library import parse_date_bound

        if value is None:
            return None
        try:
            return parse_date_bound(value, end=end)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return parse


@cli.command()
@click.option(
    "--since",
    metavar="DATE",
    callback=_date_bound(end=False),
    help="Only occurrences from DATE on (YYYY, YYYY-MM or YYYY-MM-DD).",
)
@click.option(
    "--until",
    metavar="DATE",
    callback=_date_bound(end=True),
    help="Only occurrences up to DATE, inclusive (2020 means to the end of 2020).",
)
@_json_option
@pass_app
def motifs(app, since, until, as_json):
    """List the motifs (clusters seen through time), the most recurrent first.

    A scene photographed in many separate periods scores above a burst of
    near-duplicates, which counts as one occurrence.  Photos dated only by their
    file time are listed as undated, never placed on the timeline.
    """
    from leitmotiv.web.app import motif_json, motifs_with_photos

    library = app.library_to_read()
    if library is None:
        _print_nothing(as_json)
        return
    found, photos = motifs_with_photos(library, since=since, until=until)
    if not found and not library.clusters():
        app.say_not_indexed()
    rows = [
        motif_json(m, photos, f"leitmotiv average {m.cluster_id} -o average-{m.cluster_id}.png")
        for m in found
    ]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        periods = ", ".join(
            f"{p['label']}: {_count(len(p['photos']), 'photo')}" for p in row["periods"]
        )
        undated = f"; {len(row['undated'])} undated" if row["undated"] else ""
        click.echo(
            f"motif {row['cluster_id']}  score {row['score']:.2f}  "
            f"{_recurrence(row):<9}  "
            f"{_count(row['occurrences'], 'occurrence')} in "
            f"{_count(len(row['periods']), row['resolution'])}: {periods or '-'}{undated}  "
            f"(exemplar {row['exemplar']['id']} {Path(row['exemplar']['path']).name})"
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _recurrence(row: dict[str, Any]) -> str:
    """In one word: seen in several periods, in one, or only without a capture date."""
    if row["recurring"]:
        return "recurring"
    return "once" if row["periods"] else "undated"


def _add_plugin_commands() -> None:
    from leitmotiv.plugins import get_plugin_manager

    get_plugin_manager().hook.leitmotiv_cli_commands(cli=cli)


def main() -> None:
    """Entry point of the ``leitmotiv`` script."""
    _add_plugin_commands()
    cli(prog_name="leitmotiv")
