"""The operator's command line: `status`, `submit`, `results`, `cancel`, `retry`, `cost`, `report` and
`spec-reference`, each over the engine's BatchStore at `<workdir>/batches.db`."""
