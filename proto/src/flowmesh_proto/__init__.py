"""Flowmesh wire contracts."""
