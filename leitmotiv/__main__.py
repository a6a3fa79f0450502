"""Run the command line with ``python -m leitmotiv``."""

from leitmotiv.cli import main

main()
