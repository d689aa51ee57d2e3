"""The ``local`` provider: a sentence-transformers embedding model run on this machine (the optional
``local`` extra: ``pip install 'batch_pipelines[local]'``), behind the same batch protocol as the hosted
providers. Importing this package does not import torch; the background worker does."""

from batch_pipelines.providers.local.batching import AdaptiveBatcher, plan_passes
from batch_pipelines.providers.local.model_source import ModelNotFoundError, resolve_model_path
from batch_pipelines.providers.local.provider import LocalProvider

__all__ = ["AdaptiveBatcher", "LocalProvider", "ModelNotFoundError", "plan_passes", "resolve_model_path"]
