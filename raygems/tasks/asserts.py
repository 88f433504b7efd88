"""Assert tests whose verdict is decided outside the program under test.

Running ``program + asserts`` in one interpreter lets the program read or skip its own tests: it can
return an object whose ``__eq__`` is always true, find a success marker in its code object or its
source file, trace past the assert lines, re-exec itself with ``-O``, read the expected value from the
assert's source with ``linecache``, or print the marker from an ``atexit`` handler. Here the expected
values never enter the sandbox:

* ``split_asserts`` parses each ``assert`` on the host. The sub-expressions that call into the program
  (names the reference solution or the test's setup code define, and attributes its classes define)
  become *calls*, evaluated in the sandbox with their arguments (the test's inputs). Everything else,
  the comparisons, ``not``/``and``/``or``, the literals and a few trusted wrappers (``set``, ``sorted``,
  ``len``, ``math.isclose``, ...), stays on the host. A test that needs more than this on the host
  (loops over the program's results, arithmetic that could blow up, unknown names) is refused
  with ``UnsupportedTest`` rather than run in a weaker way.
* The sandbox runs ``HARNESS``: it executes the program, then the setup code, then evaluates each
  call and writes the value to its channel (``raygems.tasks.sandbox``) as JSON of builtin types only
  (None, bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset), read through the
  builtin types' own methods, so a subclass's overrides never run and it arrives as its base type
  (a ``Counter`` as a dict, a namedtuple as a tuple). Anything else is an error.
* ``verdict`` rebuilds plain values from that JSON (strictly: unknown shapes, extra or missing records,
  over-deep or oversized values, more than ``MAX_VALUE_ELEMENTS`` elements in all fail) and evaluates
  each assert with the host's own builtins. ``==`` therefore has Python's meaning for builtin types
  (``1 == 1.0`` holds, as the test says), and no object of the program's ever runs on the host. The
  exit status and the output of the program play no part in the verdict.

What the program can still do is compute the right values: that includes hard-coding the three
asserts an MBPP prompt shows (memorising the visible tests, not gaming the harness).
"""
from __future__ import annotations

import ast
import builtins
import functools
import json
import math
import re
from dataclasses import dataclass, field
from types import CodeType

from raygems.tasks.sandbox import SandboxLimits, SandboxResult, run_program
from raygems.tasks.scoring import quietly

MAX_RESULT_BYTES = 1024 * 1024      # the channel: every call's value together
MAX_DEPTH = 100                     # nesting of a value
MAX_INT_HEX_DIGITS = 100_000        # about 400,000 bits
# Values (every element, at any depth) of all calls together. Hashing n distinct values chosen to share one
# hash (ints k * (2**61 - 1), tuples or frozensets built from them) costs the host O(n**2): 5,000 take
# 0.15 s (2-core AMD EPYC), 38,000 took 6.4 s. MBPP's 500 reference solutions send at most 487.
MAX_VALUE_ELEMENTS = 5_000
SANDBOX_FAILURES = ("timeout", "memory", "cpu-time", "output-limit", "killed")

# Host-side names a test may use around the program's calls: functions of builtin values that take
# time and memory in proportion to their input (no range, pow, sum, bytes, ...).
TRUSTED_CALLS = {name: getattr(builtins, name) for name in (
    "abs", "all", "any", "bool", "dict", "float", "frozenset", "int", "isinstance", "len", "list", "max",
    "min", "round", "set", "sorted", "str", "tuple", "type")}
TRUSTED_TYPES = {name: getattr(builtins, name) for name in ("complex", "bytes")}  # for isinstance/type tests
TRUSTED_MATH = ("isclose", "isnan", "isinf", "isfinite", "fabs", "floor", "ceil", "trunc", "sqrt",
                "pi", "e", "inf", "nan", "tau")
_SAFE_OPERATORS = (ast.Add, ast.Sub, ast.Div, ast.FloorDiv, ast.BitAnd, ast.BitOr, ast.BitXor, ast.RShift)
_HOST_ONLY = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.NamedExpr,
              ast.JoinedStr, ast.Await, ast.Yield, ast.YieldFrom)
_HOLE = "_call_"


class UnsupportedTest(ValueError):
    """A test assert this checker cannot decide on the host (a problem of the dataset, not of a
    model's answer)."""


@dataclass(frozen=True)
class Step:
    """One thing the sandbox does, in order: ``exec`` a block (the program, setup code) or ``eval`` a
    call into the program and send its value."""

    kind: str
    filename: str
    source: str


@dataclass(frozen=True)
class HostAssert:
    """An assert as the host evaluates it: ``expression`` (compiled: ``code``) with the names
    ``_call_<step>`` standing for the values of the sandbox's ``eval`` steps listed in ``steps``."""

    source: str
    expression: str
    steps: tuple[int, ...]
    code: CodeType = field(repr=False, compare=False)


@dataclass(frozen=True)
class SplitTests:
    """The sandbox's steps after the program (setup code and calls) and the host's asserts."""

    steps: tuple[Step, ...]
    asserts: tuple[HostAssert, ...]


@dataclass
class CheckedRun:
    """The verdict on one program.

    ``reason``: "ok"; "assert-failed" (an assert was false); "error" (the program, the setup code
    or a call raised; or an assert raised on the host); "exited-early" (the program ended before
    every call was answered); "bad-result" (a value of an unsupported type, too large or deep, or
    records that the harness did not write); or the sandbox's reason when it stopped the program
    first ("timeout", "memory", "cpu-time", "output-limit", "killed"). ``detail``: the failing
    assert or the error, for people.
    """

    passed: bool
    reason: str
    detail: str
    sandbox: SandboxResult


# --------------------------------------------------------------------------------------------------
# Splitting the asserts (host)
# --------------------------------------------------------------------------------------------------
def _module_bindings(statements: list[ast.stmt], names: set[str]) -> None:
    """Names bound at module level, also inside if/for/while/with/try blocks, but not imports and
    not the local names of functions and classes."""
    for statement in statements:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(statement.name)
            continue
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            continue
        blocks = [getattr(statement, field, None) for field in ("body", "orelse", "finalbody")]
        blocks += [handler.body for handler in getattr(statement, "handlers", [])]
        nested = [block for block in blocks if isinstance(block, list)]
        for field, value in ast.iter_fields(statement):
            if field in ("body", "orelse", "finalbody", "handlers"):
                continue
            for node in ast.walk(value) if isinstance(value, ast.AST) else (
                    n for v in (value if isinstance(value, list) else []) if isinstance(v, ast.AST)
                    for n in ast.walk(v)):
                if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    names.add(node.id)
        for block in nested:
            _module_bindings(block, names)


def _vocabulary(source: str) -> tuple[set[str], set[str]]:
    """The names a program defines at module level (not the modules it imports) and the attribute
    names its classes define (methods, class attributes, ``self.x = ...``)."""
    tree = quietly(ast.parse, source)
    names: set[str] = set()
    _module_bindings(tree.body, names)
    attributes: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            names.update(node.names)
        elif isinstance(node, ast.ClassDef):
            class_names: set[str] = set()
            _module_bindings(node.body, class_names)
            attributes |= class_names
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            attributes.add(node.attr)
    return names, attributes


class _Splitter(ast.NodeTransformer):
    """Replaces the calls into the program with ``_call_<step>`` names and checks that the rest is
    something the host may evaluate."""

    def __init__(self, names: set[str], attributes: set[str], source: str, first_step: int) -> None:
        self.names, self.attributes, self.source = names, attributes, source
        self.calls: list[ast.expr] = []
        self.first_step = first_step

    def refuse(self, why: str) -> UnsupportedTest:
        return UnsupportedTest(f"test assert {self.source.strip()!r}: {why}")

    def is_program(self, node: ast.AST) -> bool:
        if isinstance(node, ast.Name):
            return node.id in self.names
        if isinstance(node, ast.Attribute):
            return node.attr in self.attributes
        if isinstance(node, ast.Call):
            return self.is_program(node.func)
        return False

    def has_call(self, node: ast.AST) -> bool:
        return any(isinstance(n, ast.Name) and n.id.startswith(_HOLE) for n in ast.walk(node))

    def visit(self, node: ast.AST) -> ast.AST:
        if isinstance(node, ast.expr) and self.is_program(node):
            self.calls.append(node)
            return ast.copy_location(ast.Name(id=f"{_HOLE}{self.first_step + len(self.calls) - 1}",
                                              ctx=ast.Load()), node)
        if isinstance(node, _HOST_ONLY):
            raise self.refuse(f"{type(node).__name__} is not evaluated on the host")
        return super().visit(node)

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id not in TRUSTED_CALLS and node.id not in TRUSTED_TYPES and node.id != "math":
            raise self.refuse(f"name {node.id!r} is neither the program's nor a trusted builtin")
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.value, ast.Name) and node.value.id == "math":
            if node.attr not in TRUSTED_MATH:
                raise self.refuse(f"math.{node.attr} is not trusted on the host")
            return node
        return self.generic_visit(node)  # a method or attribute of a builtin value

    def visit_Call(self, node: ast.Call) -> ast.AST:
        node = self.generic_visit(node)
        func = node.func
        if isinstance(func, ast.Attribute) and not (isinstance(func.value, ast.Name) and func.value.id == "math"):
            arguments = [*node.args, *(k.value for k in node.keywords)]
            if any(self.has_call(a) for a in arguments):  # "abc".ljust(<call>) could take any memory
                raise self.refuse("a program's value as the argument of a method")
        elif any(self.has_call(k.value) for k in node.keywords) or (
                isinstance(func, ast.Name) and func.id == "round" and any(self.has_call(a) for a in node.args[1:])):
            raise self.refuse("a program's value as a keyword or as round()'s ndigits")
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        node = self.generic_visit(node)
        if not isinstance(node.op, _SAFE_OPERATORS) and (self.has_call(node.left) or self.has_call(node.right)):
            raise self.refuse(f"{type(node.op).__name__} of a program's value could take any time or memory")
        return node


@functools.lru_cache(maxsize=4096)
def split_asserts(test_code: str, solution: str) -> SplitTests:
    """Split ``test_code`` (setup statements and ``assert`` statements, in order) into the sandbox's
    steps and the host's asserts. ``solution`` is the reference solution: the names it defines (and
    those the setup code defines) are the program's vocabulary. Raises UnsupportedTest (a ValueError)
    for asserts the host cannot decide safely, and for a test with no assert or an assert that does
    not call the program."""
    tree = quietly(ast.parse, test_code)
    names, attributes = _vocabulary(solution)
    setup_names, setup_attributes = _vocabulary(test_code)
    names |= setup_names
    attributes |= setup_attributes
    steps: list[Step] = []
    asserts: list[HostAssert] = []
    pending: list[ast.stmt] = []

    def flush_setup() -> None:
        if pending:
            steps.append(Step("exec", "<test setup>", ast.unparse(ast.Module(body=list(pending), type_ignores=[]))))
            pending.clear()

    for statement in tree.body:
        if not isinstance(statement, ast.Assert):
            pending.append(statement)
            continue
        flush_setup()
        source = ast.get_source_segment(test_code, statement) or ast.unparse(statement)
        first_step = len(steps) + 1  # step 0 is the program itself
        splitter = _Splitter(names, attributes, source, first_step)
        expression = splitter.visit(statement.test)
        if not splitter.calls:
            raise splitter.refuse("it does not call the program")
        steps.extend(Step("eval", "<test>", ast.unparse(call)) for call in splitter.calls)
        text = ast.unparse(expression)
        asserts.append(HostAssert(source.strip(), text, tuple(range(first_step, first_step + len(splitter.calls))),
                                  quietly(compile, text, "<host assert>", "eval")))
    flush_setup()
    if not asserts:
        raise UnsupportedTest("the test code has no assert")
    return SplitTests(tuple(steps), tuple(asserts))


# --------------------------------------------------------------------------------------------------
# The harness (runs in the sandbox, with the program)
# --------------------------------------------------------------------------------------------------
HARNESS = r'''
def _check(job, channel):
    import builtins, os
    from json import dumps
    # Our own references, taken before the program runs (it may replace builtins or os.write).
    write, exit_now, kind_of, subclass, budget = os.write, os._exit, type, issubclass, [job["max_bytes"]]
    compile_, exec_, eval_, text_format, dict_items = compile, exec, eval, format, dict.items
    int_value, float_value, str_value = int.__int__, float.__float__, str.__str__
    complex_parts, bytes_hex, float_hex = complex.__getnewargs__, bytes.hex, float.hex
    items = {list: list.__iter__, tuple: tuple.__iter__, set: set.__iter__, frozenset: frozenset.__iter__}

    def spend(amount):
        budget[0] -= amount
        if budget[0] < 0:
            raise ValueError("the value is too large")

    def encode(value, depth):
        # Exact builtin values, read through the builtin types' own methods: overrides never run.
        kind = kind_of(value)
        spend(1)
        if value is None or kind is bool:
            return value
        if depth > job["max_depth"]:
            raise ValueError("the value is nested too deeply")
        if subclass(kind, int):
            digits = text_format(int_value(value), "x")
            spend(len(digits))
            return ["int", digits]
        if subclass(kind, float):
            return ["float", float_hex(float_value(value))]
        if subclass(kind, complex):
            real, imag = complex_parts(value)
            return ["complex", float_hex(real), float_hex(imag)]
        if subclass(kind, str):
            text = str_value(value)
            spend(len(text))
            return ["str", text]
        if subclass(kind, bytes):
            spend(len(value))
            return ["bytes", bytes_hex(value)]
        if subclass(kind, dict):
            return ["dict", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict_items(value)]]
        for base, iterate in items.items():
            if subclass(kind, base):
                return [base.__name__, [encode(item, depth + 1) for item in iterate(value)]]
        raise TypeError(f"values of type {kind.__name__} are not supported (builtin types only)")

    def send(record):
        data = (dumps(record) + "\n").encode()
        while data:
            data = data[write(channel, data):]

    def describe(error):
        try:
            return f"{kind_of(error).__name__}: {error}"[:500]
        except BaseException:
            return kind_of(error).__name__

    namespace = {"__name__": job["run_name"], "__builtins__": builtins}
    for index, (kind, filename, source) in enumerate(job["steps"]):
        try:
            code = compile_(source, filename, kind)
            if kind == "exec":
                exec_(code, namespace)
            else:
                send({"step": index, "value": encode(eval_(code, namespace), 0)})
        except BaseException as error:  # SystemExit too: the program cannot end the check early
            send({"step": index, "error": describe(error)})
            exit_now(1)
    exit_now(0)
'''


def harness_program(code: str, tests: SplitTests, run_name: str = "solution") -> str:
    """The program the sandbox runs: ``HARNESS``, then a call with the job (the program's code, the
    setup code and the calls: the test's inputs, never its expected values)."""
    steps = [["exec", "solution.py", code]] + [[s.kind, s.filename, s.source] for s in tests.steps]
    job = {"run_name": run_name, "steps": steps, "max_depth": MAX_DEPTH, "max_bytes": MAX_RESULT_BYTES}
    return f"{HARNESS}\n_check({job!r}, SANDBOX_CHANNEL_FD)\n"


# --------------------------------------------------------------------------------------------------
# Reading the values and deciding (host)
# --------------------------------------------------------------------------------------------------
class _BadResult(ValueError):
    pass


_HEX_INT = re.compile(r"-?[0-9a-f]+")
_SEQUENCES = {"list": list, "tuple": tuple, "set": set, "frozenset": frozenset}


def _rebuild(item: object, depth: int = 0, budget: list[int] | None = None) -> object:
    """A plain builtin value from its JSON form; anything unexpected raises _BadResult. ``budget``: a
    one-element list holding how many more elements may be rebuilt (all calls' values share it)."""
    budget = [MAX_VALUE_ELEMENTS] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        raise _BadResult(f"more than {MAX_VALUE_ELEMENTS} elements in the values")
    if item is None or item is True or item is False:
        return item
    if depth > MAX_DEPTH:
        raise _BadResult("a value nested too deeply")
    if type(item) is not list or not item or type(item[0]) is not str:
        raise _BadResult(f"not a tagged value: {str(item)[:80]}")
    tag, fields = item[0], item[1:]
    if tag in ("int", "float", "str", "bytes") and (len(fields) != 1 or type(fields[0]) is not str):
        raise _BadResult(f"malformed {tag}")
    try:
        if tag == "int":
            if len(fields[0]) > MAX_INT_HEX_DIGITS or not _HEX_INT.fullmatch(fields[0]):
                raise _BadResult("malformed int")
            return int(fields[0], 16)
        if tag == "float":
            return float.fromhex(fields[0])
        if tag == "str":
            return fields[0]
        if tag == "bytes":
            return bytes.fromhex(fields[0])
        if tag == "complex" and len(fields) == 2 and all(type(f) is str for f in fields):
            return complex(float.fromhex(fields[0]), float.fromhex(fields[1]))
        if len(fields) == 1 and type(fields[0]) is list:
            if tag in _SEQUENCES:
                return _SEQUENCES[tag](_rebuild(element, depth + 1, budget) for element in fields[0])
            if tag == "dict":
                pairs = fields[0]
                if not all(type(pair) is list and len(pair) == 2 for pair in pairs):
                    raise _BadResult("malformed dict")
                return {_rebuild(k, depth + 1, budget): _rebuild(v, depth + 1, budget) for k, v in pairs}
    except (ValueError, TypeError, OverflowError) as error:  # bad hex, unhashable keys, ...
        if isinstance(error, _BadResult):
            raise
        raise _BadResult(f"malformed {tag}: {error}") from None
    raise _BadResult(f"unknown value tag {tag!r}")


def _read_records(channel: bytes, eval_steps: set[int]) -> tuple[dict[int, object], tuple[int, str] | None]:
    """The values per step and the first error (step, text), from the harness's JSON lines, which
    must come in step order, one per ``eval`` step, then at most one error. Raises _BadResult."""
    values: dict[int, object] = {}
    error = None
    last_step = -1
    budget = [MAX_VALUE_ELEMENTS]
    lines = channel.split(b"\n")
    for line in lines[:-1]:  # the last piece is empty or a line cut off by the end of the program
        if error is not None:
            raise _BadResult("records after an error")
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as problem:
            raise _BadResult(f"unreadable record: {problem}") from None
        if type(record) is not dict or type(record.get("step")) is not int or len(record) != 2:
            raise _BadResult("malformed record")
        step = record["step"]
        if step <= last_step:
            raise _BadResult("records out of order")
        last_step = step
        if "value" in record and step in eval_steps:
            try:
                values[step] = _rebuild(record["value"], budget=budget)
            except RecursionError:
                raise _BadResult("a value nested too deeply") from None
        elif "error" in record and type(record["error"]) is str:
            error = (step, record["error"])
        else:
            raise _BadResult("malformed record")
    return values, error


def verdict(tests: SplitTests, sandbox: SandboxResult) -> CheckedRun:
    """Decide from the values the sandbox sent; nothing else the program did counts."""
    def result(reason: str, detail: str) -> CheckedRun:
        return CheckedRun(passed=reason == "ok", reason=reason, detail=detail, sandbox=sandbox)

    if sandbox.channel_overflow:
        return result("bad-result", f"more than {MAX_RESULT_BYTES} bytes of values")
    eval_steps = {index + 1 for index, step in enumerate(tests.steps) if step.kind == "eval"}
    try:
        values, error = _read_records(sandbox.channel, eval_steps)
    except _BadResult as problem:
        return result("bad-result", str(problem))
    for host_assert in tests.asserts:
        if not all(step in values for step in host_assert.steps):
            break
        scope = {"__builtins__": {}, **TRUSTED_CALLS, **TRUSTED_TYPES, "math": math}
        scope.update({f"{_HOLE}{step}": values[step] for step in host_assert.steps})
        try:
            holds = bool(eval(host_assert.code, scope))
        except Exception as problem:  # TypeError, RecursionError, MemoryError on the program's values
            return result("error", f"{host_assert.source}: {type(problem).__name__}: {problem}")
        if not holds:
            return result("assert-failed", host_assert.source)
    else:
        return result("ok", "")
    if error is not None:
        step, text = error
        if step == 0 and text.startswith("SystemExit"):
            return result("exited-early", f"the program raised {text}")
        where = "the program" if step == 0 else (
            "the setup code" if tests.steps[step - 1].kind == "exec" else tests.steps[step - 1].source)
        return result("error", f"{where}: {text}")
    if sandbox.reason in SANDBOX_FAILURES:
        return result(sandbox.reason, f"stopped by the sandbox ({sandbox.reason})")
    return result("exited-early", "the program ended before every call was answered")


def check_program(code: str, tests: SplitTests, limits: SandboxLimits, run_name: str = "solution") -> CheckedRun:
    """Run ``code`` against ``tests`` in the sandbox and decide on the host. Code execution must be
    enabled by the caller (this runs with ``allow=True``)."""
    sandbox = run_program(harness_program(code, tests, run_name), allow=True, limits=limits,
                          channel_bytes=MAX_RESULT_BYTES)
    return verdict(tests, sandbox)
