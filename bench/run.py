"""Run every benchmark script in bench/ and print one table.

Each script ``bench/<name>.py`` accepts ``--json`` (and ``--quick``) and prints, as its last
output, a JSON list of rows (or an object with a ``rows`` list). A row has ``figure`` and
``value`` and may have ``unit``, ``floor`` (or ``peer``), ``ratio``, ``target`` and ``met``.
Benchmarks never fail on a time: this prints what was measured and whether each target was met.

    python bench/run.py [--quick] [--json] [--only engine,graphql]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = {"run.py", "__init__.py", "conftest.py"}


def scripts(only: set[str] | None) -> list[Path]:
    found = sorted(
        p for p in HERE.glob("*.py") if p.name not in SKIP and not p.name.startswith("_")
    )
    return [p for p in found if only is None or p.stem in only]


def parse_rows(stdout: str) -> list[dict]:
    text = stdout.strip()
    candidates = [text] + [line for line in reversed(text.splitlines()) if line.strip()[:1] in "[{"]
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        rows = data.get("rows") if isinstance(data, dict) else data
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            return rows
    raise ValueError("no JSON rows in the script's output")


def fmt(value) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def stop(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM to the script's process group (the script stops its servers and drops its scratch
    databases), SIGKILL to what is left after ``grace`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()


def run(only: set[str] | None, quick: bool, timeout: float) -> tuple[list[dict], list[str]]:
    rows: list[dict] = []
    problems: list[str] = []
    env = {
        **os.environ,
        "PYTHONPATH": str(HERE.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    for script in scripts(only):
        args = [sys.executable, str(script), "--json"] + (["--quick"] if quick else [])
        started = time.monotonic()
        # Its own process group: on a timeout or Ctrl-C the servers a script started get the
        # signal too.
        process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=HERE.parent,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(process)
            problems.append(f"{script.name}: timed out after {timeout:.0f}s")
            continue
        except BaseException:  # Ctrl-C (the script is in its own session and did not get it)
            stop(process)
            raise
        done = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            problems.append(f"{script.name}: exit {done.returncode}: " + " | ".join(tail))
            continue
        try:
            script_rows = parse_rows(done.stdout)
        except ValueError as exc:
            problems.append(f"{script.name}: {exc}")
            continue
        for row in script_rows:
            row.setdefault("script", script.stem)
        rows.extend(script_rows)
        print(
            f"# {script.name}: {len(script_rows)} rows in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )
    return rows, problems


def table(rows: list[dict]) -> str:
    headers = ["script", "figure", "value", "unit", "floor / peer", "ratio", "target", "met"]
    body = [
        [
            r.get("script", ""),
            r.get("figure", ""),
            fmt(r.get("value")),
            r.get("unit", "") or "",
            fmt(r.get("floor", r.get("peer"))),
            fmt(r.get("ratio")),
            r.get("target", "") or "-",
            fmt(r.get("met")) if r.get("met") is not None else "-",
        ]
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *body, strict=False)]

    def line(cells):
        return (
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"
        )

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(b) for b in body]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, finishes in under two minutes"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    parser.add_argument("--only", help="comma-separated script names (without .py)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per script")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    timeout = args.timeout or (110 if args.quick else 1800)
    rows, problems = run(only, args.quick, timeout)
    if args.json:
        print(json.dumps({"rows": rows, "problems": problems}, indent=2, default=str))
    else:
        backend = (
            "PostgreSQL"
            if os.environ.get("DATABASE_URL", "").startswith("postgres")
            else "SQLite (in memory)"
        )
        layer = "Redis" if os.environ.get("REDIS_URL") else "in-memory channel layer"
        print(f"django-steps benchmarks — {backend}, {layer}{' (quick)' if args.quick else ''}\n")
        print(table(rows))
        for problem in problems:
            print(f"\nproblem: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
