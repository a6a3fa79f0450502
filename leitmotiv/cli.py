"""The ``leitmotiv`` command line.

Each command parses its arguments, calls the library and prints: human-readable
output by default, ``--json`` for scripts.  Heavy modules are imported inside the
commands so that ``leitmotiv --help`` is instant.  User errors exit with status 2
and a one-line message; failures while working exit 1; a Python traceback is shown
only with ``--debug``.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from leitmotiv.config import ConfigError, Settings, load_settings

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
        except Exception as exc:
            if ctx.obj is not None and ctx.obj.debug:
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


class AppContext:
    """What every command gets: the settings and, lazily, the opened library."""

    def __init__(self, settings: Settings, debug: bool) -> None:
        self.settings = settings
        self.debug = debug
        self._library = None

    @property
    def library(self):
        """The library of ``settings.library``, opened on first use."""
        if self._library is None:
            from leitmotiv.library import Library

            self._library = Library.open(self.settings)
        return self._library


pass_app = click.make_pass_decorator(AppContext)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on standard output."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


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
    type=click.Path(file_okay=False, path_type=Path),
    help="Library folder (default: LEITMOTIV_LIBRARY, the config file, or the user data folder).",
)
@click.option("--featurizer", help="Featurizer plugin to use (see `leitmotiv plugins`).")
@click.option("--divergence", help="Divergence plugin to use.")
@click.option("--clusterer", help="Clusterer plugin to use.")
@click.version_option(package_name="leitmotiv")
@click.pass_context
def cli(ctx, config_path, debug, library, featurizer, divergence, clusterer):
    """leitmotiv: find the recurring motifs in a photo collection."""
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
    ctx.obj = AppContext(settings, debug)
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
        params = ", ".join(f"{k}={v!r}" for k, v in row.params.items())
        click.echo(f"{row.kind:<11} {row.name:<16} {row.package} {row.version}  ({params})")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option(
    "--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Worker threads answering requests.",
)
@pass_app
def serve(app, host, port, threads):
    """Serve the web view of the library with waitress (a production WSGI server).

    It listens on 127.0.0.1 only, unless --host says otherwise: the view shows file
    paths and serves the original photos, so exposing it is a deliberate choice.
    """
    import waitress

    from leitmotiv.web.app import make_app

    wsgi_app = make_app(app.library)
    try:
        server = waitress.create_server(wsgi_app, host=host, port=port, threads=threads)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    shown_host = f"[{host}]" if ":" in host else host
    click.echo(f"Serving {app.settings.library} on http://{shown_host}:{server.effective_port}/")
    click.echo("Press Ctrl+C to stop.")
    try:
        server.run()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.close()


def _add_plugin_commands() -> None:
    from leitmotiv.plugins import get_plugin_manager

    get_plugin_manager().hook.leitmotiv_cli_commands(cli=cli)


def main() -> None:
    """Entry point of the ``leitmotiv`` script."""
    _add_plugin_commands()
    cli(prog_name="leitmotiv")
