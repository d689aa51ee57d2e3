"""Run the emulator: bind 127.0.0.1 (a free port for 0), serve with uvicorn, announce the URL once ready."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn
import uvloop

from batch_pipelines.emulator import LIFELINE_FD_ENV, READY_PREFIX
from batch_pipelines.emulator.app import build_app
from batch_pipelines.emulator.config import EmulatorConfig
from batch_pipelines.emulator.runtime import Runtime


def serve(config: EmulatorConfig, host: str, port: int, state_dir: Path | None) -> None:
    # Batch files are checked and answered in worker threads; by default such a thread keeps the GIL for
    # 5 ms at a time, and every socket read of an upload arriving meanwhile waits that long for it.
    sys.setswitchinterval(0.0005)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    bound_port = listener.getsockname()[1]
    app = build_app(Runtime.create(config, state_dir))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            loop="uvloop",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,
            proxy_headers=False,
            backlog=2048,
        )
    )

    lifeline = os.environ.get(LIFELINE_FD_ENV)
    if lifeline:
        threading.Thread(target=_exit_with_parent, args=(int(lifeline), server), daemon=True).start()

    async def announce_when_ready() -> None:
        # uvicorn offers no readiness event to wait on.
        while not server.started:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        sys.stdout.write(f"{READY_PREFIX}http://{host}:{bound_port}\n")
        sys.stdout.flush()

    async def run() -> None:
        announcer = asyncio.create_task(announce_when_ready())
        await server.serve(sockets=[listener])
        announcer.cancel()

    uvloop.run(run())


# After the parent died: how long a graceful stop may take before the process ends anyway (every state
# file is written whole, so ending at any point loses nothing).
ORPHAN_GRACE_S = 5.0


def _exit_with_parent(fd: int, server: uvicorn.Server) -> None:
    """Read the lifeline pipe until end of file: only the parent holds its write end, so that is the
    parent's end, however it died. Then stop serving."""
    with os.fdopen(fd, "rb", buffering=0) as pipe:
        while pipe.read(1024):
            pass
    server.should_exit = True
    time.sleep(ORPHAN_GRACE_S)
    os._exit(0)
