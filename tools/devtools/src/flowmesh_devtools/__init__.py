"""Flowmesh development tools: what tests, ``make dev`` and the benchmarks need, and no
service installs (:mod:`flowmesh_devtools.localstack` starts NATS and PostgreSQL)."""
