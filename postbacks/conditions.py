"""Conditions on a postback: rules on macro values that must all hold for it to fire.

A condition is data, `{"macro": "country", "op": "in", "value": ["US", "CA"]}`, checked when
saved or imported (each problem named by its position) and evaluated against the event's
macro values when its deliveries are planned. Text compares without regard to case (country
codes and event names arrive in either); `greater_than` and `less_than` compare numbers.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from partners.macros import MACRO_NAMES

TEXT_OPERATORS = ("equals", "not_equals", "contains")
LIST_OPERATORS = ("in", "not_in")
NUMBER_OPERATORS = ("greater_than", "less_than")
OPERATORS = TEXT_OPERATORS + LIST_OPERATORS + NUMBER_OPERATORS
OPERATOR_WORDS = {
    "equals": "equals",
    "not_equals": "does not equal",
    "contains": "contains",
    "in": "is one of",
    "not_in": "is none of",
    "greater_than": "is greater than",
    "less_than": "is less than",
}
MAX_CONDITIONS = 20


def conditions_problems(conditions: Any) -> list[str]:
    """Every problem of a list of conditions, each named by its position (`conditions[1].op: …`)."""
    if not isinstance(conditions, list):
        return ['conditions: give a list, e.g. [{"macro": "country", "op": "in", "value": ["US", "CA"]}]']
    if len(conditions) > MAX_CONDITIONS:
        return [f"conditions: at most {MAX_CONDITIONS}"]
    problems = []
    for index, condition in enumerate(conditions):
        path = f"conditions[{index}]"
        if not isinstance(condition, dict):
            problems.append(f'{path}: give an object {{"macro": …, "op": …, "value": …}}')
            continue
        for key in sorted(set(condition) - {"macro", "op", "value"}):
            problems.append(f"{path}.{key}: unknown key (allowed: macro, op, value)")
        if condition.get("macro") not in MACRO_NAMES:
            problems.append(f"{path}.macro: {condition.get('macro')!r} is not a macro (see docs/macros.md)")
        op = condition.get("op")
        if op not in OPERATORS:
            problems.append(f"{path}.op: {op!r} is not one of {', '.join(OPERATORS)}")
            continue
        problem = _value_problem(op, condition.get("value"))
        if problem:
            problems.append(f"{path}.value: {problem}")
    return problems


def _value_problem(op: str, value: Any) -> str | None:
    if op in LIST_OPERATORS:
        if not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value):
            return f"{op} takes a non-empty list of text values"
        return None
    if op in NUMBER_OPERATORS:
        if isinstance(value, bool) or _number(value) is None:
            return f"{op} takes a number"
        return None
    if not isinstance(value, str):
        return f"{op} takes a text value"
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def condition_unmet(conditions: list[dict], values: dict[str, str]) -> str | None:
    """Why the first condition that does not hold for these macro values fails, or None when all hold."""
    for condition in conditions:
        macro, op, expected = condition["macro"], condition["op"], condition["value"]
        actual = values.get(macro, "")
        if not _holds(op, actual, expected):
            shown = f"{actual!r}" if actual != "" else "empty"
            return f"The condition “{describe(condition)}” does not hold: {macro} is {shown}."
    return None


def _holds(op: str, actual: str, expected: Any) -> bool:
    if op in NUMBER_OPERATORS:
        number = _number(actual)
        if number is None:
            return False  # an empty or non-numeric value is neither greater nor less
        return number > _number(expected) if op == "greater_than" else number < _number(expected)
    text = actual.casefold()
    if op in LIST_OPERATORS:
        found = text in {item.casefold() for item in expected}
        return found if op == "in" else not found
    if op == "contains":
        return expected.casefold() in text
    same = text == expected.casefold()
    return same if op == "equals" else not same


def describe(condition: dict) -> str:
    """A condition in words: `country is one of US, CA`."""
    value = condition["value"]
    shown = ", ".join(value) if isinstance(value, list) else str(value)
    return f"{condition['macro']} {OPERATOR_WORDS.get(condition['op'], condition['op'])} {shown}"
