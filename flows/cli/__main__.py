"""``python -m flows.cli``: the ``voc`` command."""

from flows.cli.main import main

main()
