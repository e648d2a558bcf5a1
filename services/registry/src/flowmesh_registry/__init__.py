"""Flowmesh registry service."""
