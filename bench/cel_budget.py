"""CEL evaluation budget: what the metering costs per evaluation.

    python bench/cel_budget.py [--quick] [--json]

For each condition below, the same compiled tree is evaluated two ways in one process, in
alternating batches (both see the same machine load), and the median batch of each is kept:

- **budgeted**: ``django_steps.cel.evaluate`` as the services call it — the meter set up per
  evaluation, macro items charged, size-proportional operators (``==`` on lists, ``in``, ``+``,
  …) charging, the quiet activation, the result check;
- **floor**: the same tree run by celpy's plain ``InterpretedRunner`` with the functions the
  engine used before budgets (numeric-aware comparisons only) and the same result check.

The ratio budgeted / floor is the overhead; target ≤ 1.05 (5 %). No database is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: (label, expression, context): a plain comparison on the content object, a list membership
#: and a string method, a macro over a list, nested macros, list equality.
CASES = [
    ("comparison on the object", "claim.amount > 1000 && claim.category == 'car'",
     {"claim": {"amount": 1500, "category": "car", "title": "Broken window", "count": 3}}),
    ("'in' list and string method", "claim.category in ['car', 'home', 'travel'] && claim.title.startsWith('B')",
     {"claim": {"category": "home", "title": "Broken window"}}),
    ("macro over 100 items", "items.all(i, i.amount >= 0)",
     {"items": [{"amount": n} for n in range(100)]}),
    ("nested macros 20 × 20", "l.all(a, l.exists(b, a + b >= 0))", {"l": list(range(20))}),
    ("list equality, 500 items", "l == m && size(l) == 500", {"l": list(range(500)), "m": list(range(500))}),
]


def setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault("DATABASE_URL", "sqlite://:memory:")
    import django

    django.setup()


def interleaved(fn_a, fn_b, calls: int, rounds: int) -> tuple[float, float]:
    """Median per-call seconds of ``fn_a`` and ``fn_b`` over ``rounds`` alternating batches."""
    a, b = [], []
    for r in range(rounds):
        order = ((fn_a, a), (fn_b, b)) if r % 2 == 0 else ((fn_b, b), (fn_a, a))
        for fn, times in order:
            started = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append((time.perf_counter() - started) / calls)
    return statistics.median(a), statistics.median(b)


def bench(quick: bool) -> list[dict]:
    import celpy
    from celpy import celtypes

    from django_steps import cel

    rounds = 9 if quick else 31
    rows = []
    ratios = []
    for label, expression, context in CASES:
        activation = cel.activation(context)
        program = cel.compile_condition(expression)
        plain = celpy.InterpretedRunner(cel._env(), program.ast, functions=cel.BASE_FUNCTIONS)

        def budgeted():
            return cel.evaluate(expression, activation)

        def floor():
            result = plain.evaluate(dict(activation))
            if not isinstance(result, celtypes.BoolType):
                raise AssertionError(result)
            return bool(result)

        assert budgeted() is True and floor() is True, label
        started = time.perf_counter()
        budgeted()
        one = time.perf_counter() - started
        calls = max(3, int((0.02 if quick else 0.1) / max(one, 1e-6)))
        for _ in range(3):  # warm up
            budgeted(), floor()
        with_budget, without = interleaved(budgeted, floor, calls, rounds)
        value, base = round(with_budget * 1e6, 1), round(without * 1e6, 1)
        ratio = round(value / base, 3)
        ratios.append(ratio)
        rows.append({
            "figure": f"CEL budget overhead per evaluation: {label}",
            "value": value, "unit": "µs", "floor": base, "ratio": ratio,
            "target": "<= 1.05x floor", "met": ratio <= 1.05,
        })
    worst = max(ratios)
    rows.append({
        "figure": "CEL budget overhead per evaluation: worst case of the above",
        "value": worst, "unit": "x floor", "target": "<= 1.05", "met": worst <= 1.05,
    })
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print one JSON object {rows: [...]}")
    args = parser.parse_args()
    setup()
    rows = bench(args.quick)
    if args.json:
        print(json.dumps({"rows": rows}))
    else:
        print(f"django-steps CEL budget overhead{' (quick)' if args.quick else ''}\n")
        for r in rows:
            floor = f"  floor {r['floor']} µs  ratio {r['ratio']}" if "floor" in r else ""
            print(f"{r['figure']}: {r['value']} {r['unit']}{floor}  (target {r['target']}: "
                  f"{'met' if r['met'] else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
