"""The ``flowmesh`` command line: run workflows and watch their steps live."""
