"""``python -m flowmesh_cli``: the ``flowmesh`` command."""

from flowmesh_cli.main import main

main()
