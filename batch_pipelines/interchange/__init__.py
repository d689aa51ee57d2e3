"""Interchange with offline inference engines (``vllm run-batch`` and anything else that reads and writes
OpenAI's batch file formats): export a partition's requests, import the answers exactly once."""

from batch_pipelines.interchange.requests_file import export_requests
from batch_pipelines.interchange.results_file import ImportFileError, ImportOutcome, import_results

__all__ = ["ImportFileError", "ImportOutcome", "export_requests", "import_results"]
