"""``python -m flowmesh_registry [migrate]``."""

import sys

from flowmesh_registry.main import cli

sys.exit(cli())
