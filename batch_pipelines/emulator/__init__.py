"""A local, wire-compatible OpenAI + Anthropic provider emulator (see docs/emulator.md).

Start it with ``batch-pipelines emulator`` or, from Python, with
:class:`batch_pipelines.emulator.process.EmulatorProcess`.
"""

# The one line the emulator prints on stdout once it accepts connections, followed by its URL.
READY_PREFIX = "Emulator listening on "
