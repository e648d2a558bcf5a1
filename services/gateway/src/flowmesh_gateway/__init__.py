"""Flowmesh gateway: the public HTTP API."""
