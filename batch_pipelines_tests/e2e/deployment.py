"""A real Dagster deployment for tests: `dagster-daemon` and `dagster-webserver` as child processes on
127.0.0.1, sharing one DAGSTER_HOME, and a small GraphQL client for the webserver."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import dagster as dg
import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class GraphQLError(RuntimeError):
    pass


class DagsterDeployment:
    """Daemon + webserver over `location_module`; logs land in `<home>/logs` for failure reports."""

    def __init__(self, home: Path, location_module: str, env: dict[str, str]) -> None:
        self.home = home
        self.location_module = location_module
        self.env = {**os.environ, **env, "DAGSTER_HOME": str(home)}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> DagsterDeployment:
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / "dagster.yaml", self.home / "dagster.yaml")
        # Create the instance's databases once, before the daemon, the webserver and their code servers
        # open the fresh home together and race on its schema (alembic: "more than one head present").
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            instance.get_run_records(limit=1)
            instance.get_asset_keys()
            instance.all_instigator_state()
        workspace = self.home / "workspace.yaml"
        workspace.write_text(
            "load_from:\n"
            f"  - python_module:\n      module_name: {self.location_module}\n"
            f"      working_directory: {REPO_ROOT}\n"
        )
        logs = self.home / "logs"
        logs.mkdir(exist_ok=True)
        bin_dir = Path(sys.executable).parent
        commands = {
            "daemon": [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)],
            "webserver": [
                str(bin_dir / "dagster-webserver"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-w", str(workspace)),
            ],
        }
        self.commands = commands
        for name in commands:
            self.processes.append(self._start(name))
        try:
            self._wait_until_location_loaded(timeout_s=120)
        except BaseException:  # __exit__ does not run when __enter__ raises: stop what was started
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self, name: str) -> subprocess.Popen[bytes]:
        log = (self.home / "logs" / f"{name}.log").open("ab")
        return subprocess.Popen(
            self.commands[name], env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )

    def restart_daemon(self) -> None:
        """Kill the daemon outright (SIGKILL, as a crash or a node loss would) and start a new one."""
        daemon = self.processes[0]
        daemon.kill()
        daemon.wait(timeout=30)
        self.processes[0] = self._start("daemon")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name} (last 4000 chars)\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted((self.home / "logs").glob("*.log"))
        )

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            raise GraphQLError(str(body["errors"]))
        data: dict[str, Any] = body["data"]
        return data

    def _wait_until_location_loaded(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        query = (
            "{ workspaceOrError { __typename ... on Workspace { locationEntries { name "
            "loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Dagster process exited early\n{self.logs()}")
            try:
                entries = self.graphql(query)["workspaceOrError"]["locationEntries"]
            except (httpx.HTTPError, GraphQLError, KeyError):
                entries = []
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                errors = [e for e in entries if e["locationOrLoadError"]["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(f"code location failed to load: {errors}")
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"webserver did not load the code location\n{self.logs()}")
            time.sleep(0.5)

    def launch_asset_backfill(self, asset_paths: list[list[str]], partition_names: list[str]) -> str:
        """What the UI's 'Materialize' dialog does for a range of partitions."""
        mutation = """
            mutation Launch($params: LaunchBackfillParams!) {
              launchPartitionBackfill(backfillParams: $params) {
                __typename
                ... on LaunchBackfillSuccess { backfillId }
                ... on PythonError { message stack }
              }
            }"""
        params = {
            "assetSelection": [{"path": path} for path in asset_paths],
            "partitionNames": partition_names,
        }
        answer = self.graphql(mutation, {"params": params})["launchPartitionBackfill"]
        if answer["__typename"] != "LaunchBackfillSuccess":
            raise GraphQLError(str(answer))
        backfill_id: str = answer["backfillId"]
        return backfill_id

    def wait_for_backfill(self, backfill_id: str, timeout_s: float) -> str:
        """The backfill's status once it has ended (COMPLETED_SUCCESS, COMPLETED_FAILED, FAILED, …)."""
        query = """
            query Backfill($id: String!) {
              partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
            }"""
        deadline = time.monotonic() + timeout_s
        while True:
            status: str = self.graphql(query, {"id": backfill_id})["partitionBackfillOrError"]["status"]
            if status not in ("REQUESTED", "CANCELING"):
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"backfill {backfill_id} still {status} after {timeout_s:.0f} s\n{self.logs()}"
                )
            time.sleep(2)

    def runs(self, statuses: list[str] | None = None) -> list[dict[str, Any]]:
        """Every run of the instance (id, job, status, tags), optionally only those in `statuses`."""
        query = """
            query Runs($filter: RunsFilter) {
              runsOrError(filter: $filter) {
                ... on Runs { results { runId jobName status tags { key value } } }
              }
            }"""
        runs_filter = {"statuses": statuses} if statuses else {}
        runs: list[dict[str, Any]] = self.graphql(query, {"filter": runs_filter})["runsOrError"]["results"]
        return runs

    def materialized_partitions(self, asset_path: list[str]) -> list[str]:
        """The partition of each materialization of an asset, one entry per materialization."""
        query = """
            query Materializations($key: AssetKeyInput!) {
              assetOrError(assetKey: $key) {
                ... on Asset { assetMaterializations(limit: 10000) { partition } }
              }
            }"""
        asset = self.graphql(query, {"key": {"path": asset_path}})["assetOrError"]
        return [str(event["partition"]) for event in asset.get("assetMaterializations", [])]
