"""CEL conditions: compile (checked, cached), build contexts, evaluate within a budget, and say
what went wrong without ever showing a value. Pure: no ORM access.

cel-python facts this module relies on (checked against cel-python 0.5):

- compiling costs far more than evaluating (``bench/engine.py`` measures both), so compiled
  programs are cached per expression text;
- results are ``celtypes.BoolType`` (a Python ``int`` subclass), never ``True``;
- ``Decimal`` is not a CEL value and ``int > double`` has no overload, so values are converted
  and the comparison operators are replaced with ones that compare int/uint/double numerically
  (CEL's heterogeneous numeric comparison);
- its error texts embed whole ``Activation(...)`` reprs (every variable's value), lark
  ``Token(...)`` reprs and the offending values: none of that text ever leaves this module.

The parts: :mod:`.compiler` (limits, analysis, the cache of compiled programs), :mod:`.runtime`
(the metered evaluator and its operators), :mod:`.fast` (the direct path of simple conditions,
which leaves every failure to the evaluator), :mod:`.values` (contexts), :mod:`.evaluation`
(running a condition, classifying its failures), :mod:`.common` (reasons and failures).
"""

__all__ = [
    "Reason",
    "activation",
    "available",
    "check_context",
    "clear_cache",
    "compile_condition",
    "condition_error",
    "context_error",
    "evaluate",
    "evaluate_value",
    "is_unconditional",
    "stats",
    "timestamp",
    "to_cel",
    "to_json",
    "variables",
]

from .common import Reason
from .compiler import clear_cache, compile_condition, is_unconditional, stats, variables
from .evaluation import (
    available,
    condition_error,
    context_error,
    evaluate,
    evaluate_value,
    timestamp,
)
from .values import activation, check_context, to_cel, to_json
