"""The ``voc`` command line (Typer): :mod:`flows.cli.main` holds the app and its entry point; each
sub-command group has its own module."""
