"""`python -m batch_pipelines.emulator ...`: the same as `batch-pipelines emulator ...`."""

import sys

from batch_pipelines.emulator.command import main

sys.exit(main())
