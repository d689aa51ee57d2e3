"""What the engine and the provider clients share: request and result values, errors and their
classification, batch limits, prices, and the provider protocol.

Nothing here imports :mod:`batch_pipelines.engine` or :mod:`batch_pipelines.providers`; both import this,
so the engine depends on a provider only through :class:`~batch_pipelines.wire.provider.BatchProvider`.
"""
