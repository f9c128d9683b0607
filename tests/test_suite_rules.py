"""The suite's own rules, checked on its source: no test whose every assertion an empty input would
pass (asserts only inside loops over computed iterables, or ``assert all(... for x in computed)``).
Such a loop needs its iterable asserted non-empty first."""

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def literal(iterable: ast.expr) -> bool:
    """A non-empty literal (a tuple, list, set or dict written out, ``range(3)``): never empty."""
    if isinstance(iterable, (ast.Tuple, ast.List, ast.Set)):
        return bool(iterable.elts)
    if isinstance(iterable, ast.Dict):
        return bool(iterable.keys)
    if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Name) and iterable.args:
        if iterable.func.id == "range":
            return all(isinstance(a, ast.Constant) and isinstance(a.value, int) for a in iterable.args) and (
                len(range(*(a.value for a in iterable.args))) > 0)
        return iterable.func.id in ("enumerate", "zip", "sorted", "reversed") and all(map(literal, iterable.args))
    return False


def vacuous(node: ast.Assert) -> bool:
    """``assert all(<generator over a computed iterable>)``: true of an empty iterable."""
    test = node.test
    return (isinstance(test, ast.Call) and isinstance(test.func, ast.Name) and test.func.id == "all"
            and len(test.args) == 1 and isinstance(test.args[0], ast.GeneratorExp)
            and not all(literal(g.iter) for g in test.args[0].generators))


def assertions(node: ast.AST, in_loop: bool = False):
    """(assert or pytest.raises block, whether an empty input would skip or pass it), in ``node``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(child, ast.Assert):
            yield child, in_loop or vacuous(child)
        elif isinstance(child, ast.With) and any("raises" in ast.unparse(item.context_expr) for item in child.items):
            yield child, in_loop
        skipped = isinstance(child, (ast.For, ast.AsyncFor)) and not literal(child.iter)
        yield from assertions(child, in_loop or skipped)


def empty_passing_tests(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            kinds = [weak for _, weak in assertions(node)]
            if kinds and all(kinds):
                found.append(node.name)
    return found


def test_the_check_tells_a_guarded_loop_from_a_bare_one():
    bare = "def test_a(xs):\n    for x in xs:\n        assert x\n"
    guarded = "def test_b(xs):\n    assert xs\n    for x in xs:\n        assert x\n"
    vacuous_all = "def test_c(xs):\n    assert all(x for x in xs)\n"
    literal_loop = "def test_d():\n    for x in (1, 2):\n        assert x\n"
    assert empty_passing_tests(bare + guarded + vacuous_all + literal_loop) == ["test_a", "test_c"]


def test_no_test_passes_on_an_empty_input_alone():
    paths = sorted(TESTS.glob("test_*.py"))
    assert len(paths) > 10
    found = [f"{path.name}::{name}" for path in paths for name in empty_passing_tests(path.read_text())]
    assert not found, f"assert the iterable non-empty before the loop: {found}"
