"""A local, wire-compatible OpenAI + Anthropic provider emulator (see docs/emulator.md).

Start it with ``batch-pipelines emulator`` or, from Python, with
:class:`batch_pipelines.emulator.process.EmulatorProcess`.
"""

# The one line the emulator prints on stdout once it accepts connections, followed by its URL.
READY_PREFIX = "Emulator listening on "
# Accepted API keys, comma-separated: read from the environment so they never show in `ps`.
API_KEYS_ENV = "BATCH_PIPELINES_EMULATOR_API_KEYS"
# A pipe's read end whose write end only the parent holds: at end of file (the parent died, even by
# SIGKILL) the emulator exits. EmulatorProcess sets it; the CLI does not.
LIFELINE_FD_ENV = "BATCH_PIPELINES_EMULATOR_LIFELINE_FD"
