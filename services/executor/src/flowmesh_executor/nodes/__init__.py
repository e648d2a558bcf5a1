"""The node types the shell runs (every type the engine does not evaluate itself).

One module per type; each exposes ``async def run(call, services) -> output`` and raises
:class:`~flowmesh_executor.nodes.base.StepError` for a failure the run's policies handle.
"""
