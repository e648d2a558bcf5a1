"""The parts of definition validation; :mod:`flowmesh_registry.validate` puts them together."""
