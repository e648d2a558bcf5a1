"""``python -m flowmesh_executor``."""

import sys

from flowmesh_executor.main import cli

sys.exit(cli())
