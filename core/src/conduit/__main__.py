"""``python -m conduit`` is the ``conduit`` command."""

from conduit.cli import main

main()
