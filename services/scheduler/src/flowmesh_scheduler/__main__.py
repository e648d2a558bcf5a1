"""``python -m flowmesh_scheduler``."""

import sys

from flowmesh_scheduler.main import cli

sys.exit(cli())
