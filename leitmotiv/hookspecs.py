"""Hook specifications of leitmotiv's plugin system.

A plugin is a module (or object) with functions decorated by :data:`hookimpl`,
registered through the entry-point group ``leitmotiv``::

    [project.entry-points.leitmotiv]
    my_plugin = "my_package.plugin"
"""

import pluggy

hookspec = pluggy.HookspecMarker("leitmotiv")
hookimpl = pluggy.HookimplMarker("leitmotiv")


@hookspec
def leitmotiv_featurizers():
    """Return featurizer classes (subclasses of ``leitmotiv.interfaces.Featurizer``).

    Each class is instantiated with the parameters from the configuration.
    """


@hookspec
def leitmotiv_divergences():
    """Return divergence classes (subclasses of ``leitmotiv.interfaces.Divergence``)."""


@hookspec
def leitmotiv_clusterers():
    """Return clusterer classes (subclasses of ``leitmotiv.interfaces.Clusterer``)."""


@hookspec
def leitmotiv_cli_commands(cli):
    """Add commands to the ``leitmotiv`` command line.

    Parameters
    ----------
    cli : click.Group
        The top-level command group; call ``cli.add_command(...)``.
    """


@hookspec
def leitmotiv_web_routes(app, library):
    """Add routes to the web view.

    Parameters
    ----------
    app : bottle.Bottle
        The application being built.
    library : leitmotiv.library.Library
        The library it serves (read only: GET routes must not change it).
    """
