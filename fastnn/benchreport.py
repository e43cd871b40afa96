"""`python -m fastnn bench`: run the pytest-benchmark suite in bench/ and print a table of ratios.

Each benchmark records the units of work of one round (epochs, samples, fits or GFLOP) in extra_info,
and may add a `note` (e.g. the accuracy reached), printed at the end of its row;
the table shows each row's median, its throughput, and how many times faster fastnn's compiled
backend is than that row (measured in the same run, so the ratios survive a noisy machine).
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .config import show_config

# The row each group's ratios are taken against: the first of these names present in the group.
REFERENCE = ("fastnn (cython)", "fastnn", "fit_parallel", "fastnn.sklearn", "n_jobs=2, threading")


def find_suite(path=None) -> Path:
    candidates = [Path(path).resolve()] if path else [Path.cwd() / "bench", Path(__file__).resolve().parent.parent / "bench"]
    for candidate in candidates:
        if (candidate / "bench_xor.py").is_file():
            return candidate
    raise FileNotFoundError("the benchmark suite (bench/bench_*.py) was not found; run from a clone of fastnn "
                            "or pass --path")


def run_suite(suite: Path, quick: bool, json_path: str, pytest_args=()) -> int:
    command = [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={json_path}", "--benchmark-disable-gc", "--benchmark-quiet",
               "-o", "python_files=bench_*.py", *(["--quick"] if quick else []), *pytest_args]
    # cwd = the suite: `python -m pytest` puts its cwd on sys.path, and a checkout's root would
    # shadow the installed fastnn with its source folder.
    return subprocess.run(command, stdout=sys.stderr, cwd=suite).returncode


def rows_from(report: dict) -> list[dict]:
    rows = []
    for b in report.get("benchmarks", []):
        info = b.get("extra_info", {})
        median = b["stats"]["median"]
        units = info.get("units", 1.0)
        rows.append({"group": b["group"] or b["name"], "impl": info.get("impl", b["name"]),
                     "median_s": median, "units": units, "unit": info.get("unit", "round"),
                     "per_second": units / median if median > 0 else float("inf"),
                     "memory": info.get("memory"), "note": info.get("note", "")})
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    for members in groups.values():
        ref = next((r for name in REFERENCE for r in members if r["impl"] == name), members[0])
        for row in members:
            row["reference"] = ref["impl"]
            row["speedup"] = ref["per_second"] / row["per_second"]  # how many times faster the reference is
    return rows


def _time(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds:.3g} s"


def _rate(value: float) -> str:
    for suffix, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value:.3g} "


def table(rows: list[dict]) -> str:
    out = []
    seen = []
    for row in rows:
        if row["group"] not in seen:
            seen.append(row["group"])
    for group in seen:
        members = [r for r in rows if r["group"] == group]
        ref = members[0]["reference"]
        out.append(f"\n{group}   (× = how many times faster {ref} is)")
        out.append(f"  {'implementation':28s} {'median':>10s} {'per ' + members[0]['unit']:>12s} "
                   f"{'throughput':>16s} {'×':>8s}")
        for r in sorted(members, key=lambda r: -r["per_second"]):
            per_unit = r["median_s"] / r["units"] if r["units"] else float("nan")
            unit = r["unit"]
            rate = f"{_rate(r['per_second'])}{unit}/s" if unit != "GFLOP" else f"{r['per_second']:.1f} GFLOP/s"
            if r.get("memory"):  # a memory row: its figures, not a speed
                out.append(f"  {r['impl']:28s} " + ", ".join(f"{k} {v:.1f}" for k, v in r["memory"].items()))
                continue
            out.append(f"  {r['impl']:28s} {_time(r['median_s']):>10s} {_time(per_unit):>12s} {rate:>16s} "
                       f"{r['speedup']:>7.2f}×  {r['note']}".rstrip())
    return "\n".join(out)


def main(quick: bool = False, as_json: bool = False, path=None, pytest_args=()) -> int:
    suite = find_suite(path)
    fd, json_path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        status = run_suite(suite, quick, json_path, pytest_args)
        with open(json_path) as f:
            report = json.load(f) if os.path.getsize(json_path) else {}
    finally:
        os.unlink(json_path)
    rows = rows_from(report)
    if as_json:
        machine = report.get("machine_info", {})
        print(json.dumps({"machine": {k: machine.get(k) for k in ("node", "processor", "cpu", "python_version")},
                          "rows": rows}, indent=1, default=str))
    else:
        cpu = report.get("machine_info", {}).get("cpu", {}).get("brand_raw", "")
        print(f"fastnn benchmarks{' (quick pass)' if quick else ''}: medians; {cpu} {os.cpu_count()} cores")
        show_config()  # the CPU's features and the paths and BLAS the figures come from
        print(table(rows))
    return status
