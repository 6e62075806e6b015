"""Static check that every narrate() call in the product writes all three texts by hand.

Each call must pass a non-empty human text (the second positional argument or `human=`)
and non-empty `cute=` and `story=` keyword arguments. A text counts as written by hand when
it is a string literal or f-string with some literal text, a `+` of such texts, or a
conditional expression whose branches both are. A variable, a call or a `**kwargs` splat
does not count, because the test cannot see what text it carries.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCANNED_PACKAGES = ("rbee_daemons", "rbee_tui")
NARRATE_MODULE = "rbee_daemons.narration"


def has_literal_text(node: ast.expr) -> bool:
    """Return whether `node` is a string expression with non-blank text written in the code."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str) and node.value.strip() != ""
    if isinstance(node, ast.JoinedStr):
        return any(has_literal_text(part) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return has_literal_text(node.left) or has_literal_text(node.right)
    if isinstance(node, ast.IfExp):
        return has_literal_text(node.body) and has_literal_text(node.orelse)
    return False


def narrate_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Collect the names that refer to narrate() and to the narration module in `tree`."""
    function_names = {"narrate"}
    module_names = {"narration"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == NARRATE_MODULE:
            for alias in node.names:
                if alias.name == "narrate":
                    function_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and node.module == "rbee_daemons":
            for alias in node.names:
                if alias.name == "narration":
                    module_names.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == NARRATE_MODULE and alias.asname:
                    module_names.add(alias.asname)
    return function_names, module_names


def is_narrate_call(call: ast.Call, function_names: set[str], module_names: set[str]) -> bool:
    target = call.func
    if isinstance(target, ast.Name):
        return target.id in function_names
    if isinstance(target, ast.Attribute) and target.attr == "narrate":
        owner = target.value
        if isinstance(owner, ast.Name):
            return owner.id in module_names
        # `rbee_daemons.narration.narrate(...)`
        return ast.unparse(owner) == NARRATE_MODULE
    return False


def call_problems(call: ast.Call) -> list[str]:
    """List what is missing or empty in one narrate() call."""
    problems = []
    keywords = {keyword.arg: keyword.value for keyword in call.keywords if keyword.arg}

    human = call.args[1] if len(call.args) >= 2 else keywords.get("human")
    if human is None:
        problems.append("no human text")
    elif not has_literal_text(human):
        problems.append("human text is empty or not a string literal")

    for name in ("cute", "story"):
        value = keywords.get(name)
        if value is None:
            problems.append(f"no {name}= argument")
        elif not has_literal_text(value):
            problems.append(f"{name}= is empty or not a string literal")
    return problems


def find_incomplete_narrations(source: str, filename: str) -> list[str]:
    """Return one line per narrate() call in `source` that lacks a text, as `file:line: ...`."""
    tree = ast.parse(source, filename=filename)
    function_names, module_names = narrate_names(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and is_narrate_call(node, function_names, module_names):
            problems = call_problems(node)
            if problems:
                found.append(f"{filename}:{node.lineno}: {'; '.join(problems)}")
    return found


def count_narrate_calls(source: str) -> int:
    tree = ast.parse(source)
    function_names, module_names = narrate_names(tree)
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and is_narrate_call(node, function_names, module_names)
    )


def product_sources() -> list[Path]:
    sources: list[Path] = []
    for package in SCANNED_PACKAGES:
        sources.extend(sorted((PROJECT_ROOT / package).rglob("*.py")))
    return sources


def test_narration_all_calls_have_three_texts() -> None:
    incomplete = []
    for path in product_sources():
        relative = str(path.relative_to(PROJECT_ROOT))
        incomplete.extend(find_incomplete_narrations(path.read_text(encoding="utf-8"), relative))

    assert incomplete == []


def test_narration_scan_finds_product_calls() -> None:
    total = sum(count_narrate_calls(path.read_text(encoding="utf-8")) for path in product_sources())

    assert total > 0


COMPLETE_CALL = """
from rbee_daemons.narration import narrate
narrate("a", f"Loaded {name}.", cute="🐝 Loaded!", story='"Done," said the hive.')
"""


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        (
            'from rbee_daemons.narration import narrate\nnarrate("a", "Loaded.", story="s")\n',
            "no cute= argument",
        ),
        (
            'from rbee_daemons.narration import narrate\nnarrate("a", "Loaded.", cute="c")\n',
            "no story= argument",
        ),
        (
            'from rbee_daemons.narration import narrate\n'
            'narrate("a", "Loaded.", cute="", story="s")\n',
            "cute= is empty",
        ),
        (
            'from rbee_daemons.narration import narrate\n'
            'narrate("a", "Loaded.", cute="c", story="   ")\n',
            "story= is empty",
        ),
        (
            'from rbee_daemons.narration import narrate\nnarrate("a", "", cute="c", story="s")\n',
            "human text is empty",
        ),
        (
            'from rbee_daemons.narration import narrate\nnarrate("a", cute="c", story="s")\n',
            "no human text",
        ),
        (
            'from rbee_daemons.narration import narrate\n'
            'narrate("a", "Loaded.", cute=text, story="s")\n',
            "cute= is empty or not a string literal",
        ),
        (
            'from rbee_daemons.narration import narrate\n'
            'narrate("a", "Loaded.", **texts)\n',
            "no cute= argument",
        ),
        (
            'from rbee_daemons.narration import narrate as say\nsay("a", "Loaded.", story="s")\n',
            "no cute= argument",
        ),
        (
            'from rbee_daemons import narration\nnarration.narrate("a", "Loaded.", story="s")\n',
            "no cute= argument",
        ),
        (
            'import rbee_daemons.narration\n'
            'rbee_daemons.narration.narrate("a", "Loaded.", story="s")\n',
            "no cute= argument",
        ),
        (
            'from rbee_daemons.narration import narrate\n'
            'narrate("a", "Loaded.", cute=f"{x}", story="s")\n',
            "cute= is empty or not a string literal",
        ),
    ],
)
def test_narration_check_flags_incomplete_call(source: str, problem: str) -> None:
    found = find_incomplete_narrations(source, "example.py")

    assert len(found) == 1
    assert problem in found[0]


def test_narration_check_accepts_complete_call() -> None:
    assert find_incomplete_narrations(COMPLETE_CALL, "example.py") == []


def test_narration_check_accepts_conditional_texts() -> None:
    source = (
        "from rbee_daemons.narration import narrate\n"
        'narrate("a", "Up." if ok else "Down.", cute="🐝 " + mood,\n'
        '        story=\'"Hm," said the hive.\')\n'
    )

    assert find_incomplete_narrations(source, "example.py") == []
