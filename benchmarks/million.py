"""A million items per partition: our batch path (through Dagster) beside an openai-SDK script, in one run.

    .venv/bin/python benchmarks/million.py [--rows 1000000] [--flat-rows 5000000] [--no-extras]

Both sides process the same synthetic partition (~300 characters of text a row) against one emulator whose
time scale makes provider processing near-instant. Every stage runs in its own process, so its peak
memory (VmHWM, read by the stage itself) is its own and its CPU time (wait4) is exact. Ours: input
asset, submission (split, uploaded), completion (sensor ticks), results run (Parquet), DuckDB aggregate;
also the engine called directly (submit, completion, results), which gives the Dagster layer's cost per
item. Baseline: build JSONL, upload + create batches, poll, download + parse + one Parquet file.

Overhead counts wall time for every stage except the waiting ones (completion / poll), where the client
only waits for the emulator to process: there it counts the client's CPU time. Targets: our overhead
≤ 0.5× the baseline's; our peak ≤ 1 GB at --rows and not growing at --flat-rows (ours only); Dagster
per-item overhead ≤ 1.2× the engine called directly. Extras (million_extras.py): JSON libraries, DuckDB
over 10 partitions, the completion sensor with 1,000 open provider batches.

The last line reads
`overhead_ratio=<ours/baseline> peak_mb=<ours at --rows> peak_mb_5m=<ours at --flat-rows>`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FIGURES = "stage-figures: "
API_KEY = "sk-million-benchmark"
TIME_SCALE = 1e-4
EMULATOR_CONFIG = {"limits": {"openai_enqueued_tokens": 10**13}}
WAITING_STAGES = {"ours.completion", "engine.completion", "baseline.poll"}
OURS = ["ours.input", "ours.submission", "ours.completion", "ours.results", "ours.duckdb"]
ENGINE = ["engine.submit", "engine.completion", "engine.results"]
BASELINE = ["baseline.build", "baseline.upload", "baseline.poll", "baseline.results"]


def stage_functions() -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    name = sys.argv[sys.argv.index("--stage") + 1]
    side = name.split(".")[0]
    if name == "ours.duckdb":
        import million_query

        return {name: million_query.duckdb_stage}
    if side in ("ours", "engine"):
        import million_ours as ours

        return {
            "ours.input": ours.input_stage,
            "ours.submission": ours.submission_stage,
            "ours.completion": ours.completion_stage,
            "ours.results": ours.results_stage,
            "engine.submit": ours.engine_submit_stage,
            "engine.completion": ours.engine_completion_stage,
            "engine.results": ours.engine_results_stage,
        }
    if side == "baseline":
        import million_baseline as baseline

        return {
            "baseline.build": baseline.build_stage,
            "baseline.upload": baseline.upload_stage,
            "baseline.poll": baseline.poll_stage,
            "baseline.results": baseline.results_stage,
        }
    import million_extras as extras

    return {
        "extras.json": extras.json_libraries_stage,
        "extras.duckdb": extras.duckdb_layout_stage,
        "extras.sensor": extras.sensor_tick_stage,
    }


def run_stage_here(name: str, state_path: Path) -> None:
    """Child side: run one stage, write the updated state back, print the stage's figures as JSON."""
    state = json.loads(state_path.read_text())
    figures = stage_functions()[name](state)
    state_path.write_text(json.dumps(state))
    figures["hwm_mb"] = own_peak_mb()
    print(FIGURES + json.dumps(figures))


def own_peak_mb() -> float:
    """This process's resident high-water mark since exec. (ru_maxrss of a child also counts the pages of
    the parent it was forked from, which made every stage look as large as the orchestrator.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Measured:
    name: str
    wall_s: float
    cpu_s: float
    peak_mb: float
    figures: dict[str, Any]

    @property
    def overhead_s(self) -> float:
        return self.cpu_s if self.name in WAITING_STAGES else self.wall_s


def run_stage(name: str, state_path: Path, env: dict[str, str]) -> Measured:
    """Parent side: the stage in a child process, measured with wait4."""
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", name, "--state", str(state_path)]
    profile_to = env.get("MILLION_PROFILE_DIR")
    if profile_to and name in env.get("MILLION_PROFILE_STAGES", "").split(","):
        # py-spy's collapsed stacks (idle time included); its own memory then counts in the peak. At its
        # default 100 samples a second it took more than a core of a busy 2-core machine from the stage.
        py_spy = [str(Path(sys.executable).parent / "py-spy"), "record", "--idle", "--rate", "25"]
        py_spy += ["--format", "raw"]
        command = [*py_spy, "-o", f"{profile_to}/{name}.txt", "--", *command]
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        env=env,
        cwd=HERE,
    )
    assert child.stdout is not None
    output = child.stdout.read().decode()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    if child.returncode != 0:
        raise RuntimeError(f"stage {name} failed with exit code {child.returncode}:\n{output[-2000:]}")
    marked = [line for line in output.splitlines() if line.startswith(FIGURES)]
    figures = json.loads(marked[-1][len(FIGURES) :]) if marked else {}
    peak_mb = float(figures.pop("hwm_mb", usage.ru_maxrss / 1024))
    measured = Measured(name, wall, usage.ru_utime + usage.ru_stime, peak_mb, figures)
    extra = " ".join(f"{key}={_short(value)}" for key, value in figures.items())
    print(
        f"  {name:<18} wall {wall:8.2f} s  cpu {measured.cpu_s:8.2f} s  peak {peak_mb:7.0f} MB  {extra}",
        flush=True,
    )
    return measured


def _short(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def side_by_side(rows: int, root: Path, emulator_url: str, stages: list[str]) -> dict[str, Measured]:
    """Run `stages` over a fresh `rows`-row partition under `root`."""
    from million_data import write_partition

    root.mkdir(parents=True, exist_ok=True)
    data_path = write_partition(root, rows)
    dagster_home = root / "dagster_home"
    dagster_home.mkdir(exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    state_path = root / "state.json"
    state = {
        "rows": rows,
        "workdir": str(root),
        "data_path": str(data_path),
        "base_url": f"{emulator_url}/v1",
        "api_key": API_KEY,
    }
    state_path.write_text(json.dumps(state))
    # The checkout this script is in, whichever copy of the package the interpreter has installed.
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": f"{HERE}{os.pathsep}{HERE.parent}"}
    return {name: run_stage(name, state_path, env) for name in stages}


def total(measured: dict[str, Measured], names: list[str]) -> tuple[float, float, float, float]:
    """(overhead, wall, cpu, peak) over the named stages."""
    chosen = [measured[name] for name in names if name in measured]
    return (
        sum(m.overhead_s for m in chosen),
        sum(m.wall_s for m in chosen),
        sum(m.cpu_s for m in chosen),
        max((m.peak_mb for m in chosen), default=0.0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--flat-rows", type=int, default=None, help="ours only, for the peak (default 5×rows)"
    )
    parser.add_argument("--no-extras", action="store_true", help="skip JSON, DuckDB and sensor figures")
    parser.add_argument("--workdir", default=None, help="keep files here (default: a temporary folder)")
    parser.add_argument("--sides", default="ours,engine,baseline", help="which sides to run (comma list)")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        run_stage_here(args.stage, Path(args.state))
        return
    flat_rows = args.flat_rows if args.flat_rows is not None else 5 * args.rows
    sys.path.insert(0, str(HERE))
    from batch_pipelines.emulator.process import EmulatorProcess

    with tempfile.TemporaryDirectory(prefix="million-", dir=args.workdir) as folder:
        root = Path(folder)
        print(
            f"machine: {os.cpu_count()} cores, {cpu_pressure()}; rows={args.rows:,} flat_rows={flat_rows:,}",
            flush=True,
        )
        if not args.no_extras:
            print("extras", flush=True)
            side_by_side(
                min(args.rows, 1_000_000),
                root / "extras",
                "",
                ["extras.json", "extras.duckdb", "extras.sensor"],
            )
        with EmulatorProcess(EMULATOR_CONFIG, time_scale=TIME_SCALE, api_keys=[API_KEY]) as emulator:
            print(f"side by side at {args.rows:,} rows", flush=True)
            sides = {"ours": OURS, "engine": ENGINE, "baseline": BASELINE}
            chosen = [stage for side in args.sides.split(",") for stage in sides[side]]
            measured = side_by_side(args.rows, root / "main", emulator.url, chosen)
        flat: dict[str, Measured] = {}
        if flat_rows:
            with EmulatorProcess(EMULATOR_CONFIG, time_scale=TIME_SCALE, api_keys=[API_KEY]) as emulator:
                print(f"ours alone at {flat_rows:,} rows (peak memory)", flush=True)
                flat = side_by_side(flat_rows, root / "flat", emulator.url, OURS)
    report(args.rows, measured, flat_rows, flat)


def cpu_pressure() -> str:
    """The share of the last 5 minutes in which some runnable task waited for a core (Linux PSI): the
    same-run ratios stand either way, but absolute times on a machine kept busy by other services run
    long, and fixed costs such as importing Dagster weigh more."""
    try:
        some = Path("/proc/pressure/cpu").read_text().split()
    except OSError:
        return "CPU pressure unknown"
    avg300 = next(item for item in some if item.startswith("avg300="))
    return f"CPU pressure {avg300.split('=')[1]}% (time some task waited for a core, last 5 min)"


def report(rows: int, measured: dict[str, Measured], flat_rows: int, flat: dict[str, Measured]) -> None:
    ours, ours_wall, ours_cpu, ours_peak = total(measured, OURS)
    base, base_wall, base_cpu, base_peak = total(measured, BASELINE)
    dagster_items, *_ = total(measured, ["ours.submission", "ours.completion", "ours.results"])
    engine_items, *_ = total(measured, ENGINE)
    print(f"\nat {rows:,} rows            overhead      wall       cpu     peak")
    print(f"  ours (Dagster)     {ours:8.2f} s {ours_wall:8.2f} s {ours_cpu:8.2f} s {ours_peak:6.0f} MB")
    print(f"  baseline (SDK)     {base:8.2f} s {base_wall:8.2f} s {base_cpu:8.2f} s {base_peak:6.0f} MB")
    flat_peak = total(flat, OURS)[3] if flat else float("nan")
    if not ours or not base or not engine_items:  # a run of some sides only
        print(f"overhead_ratio=nan peak_mb={ours_peak:.0f} peak_mb_5m={flat_peak:.0f}")
        return
    print(f"  overhead ours/baseline: {ours / base:.2f} (target ≤ 0.5)")
    print(f"  peak ours: {ours_peak:.0f} MB (target ≤ 1024), baseline {base_peak:.0f} MB")
    print(
        f"  per item under Dagster {dagster_items / rows * 1e6:.1f} µs vs engine directly "
        f"{engine_items / rows * 1e6:.1f} µs: {dagster_items / engine_items:.2f}× (target ≤ 1.2)"
    )
    if flat:
        print(
            f"  peak ours at {flat_rows:,} rows: {flat_peak:.0f} MB "
            f"({flat_peak / ours_peak:.2f}× the peak at {rows:,})"
        )
    print(f"overhead_ratio={ours / base:.3f} peak_mb={ours_peak:.0f} peak_mb_5m={flat_peak:.0f}")


if __name__ == "__main__":
    main()
