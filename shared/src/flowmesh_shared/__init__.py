"""Flowmesh shared runtime."""
