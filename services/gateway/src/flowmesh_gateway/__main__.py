"""``python -m flowmesh_gateway``."""

import sys

from flowmesh_gateway.main import cli

sys.exit(cli())
