"""Flowmesh executor: runs workflow DAGs (the pure engine lives in :mod:`.engine`)."""
