"""``python -m batch_pipelines.providers.local ROOT --lock-fd N``: the background worker (see worker.py)."""

import sys

from batch_pipelines.providers.local.worker import main

sys.exit(main())
