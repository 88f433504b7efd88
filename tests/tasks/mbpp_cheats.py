"""A corpus of MBPP answers that try to pass without solving the problem, and the problems they cheat on.

Each problem is written like an MBPP row (text, reference solution, asserts, setup code); each cheat is a
program template where ``{name}`` stands for the function the asserts call (``program`` fills it in).
Every cheat is wrong (its function does not compute the answer) and targets one way a scorer can be fooled. The first eight are the
ones found by the adversarial run of raygems issue 13 on mbpp/11; the rest are variations and attacks on
the scorer that replaced it. ``DEFENCE`` names what makes each score 0 (see docs/sandbox.md).

``HONEST_VARIANTS`` are correct answers written in unusual ways that a strict scorer must still accept.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    name: str          # the function the asserts call
    text: str
    solution: str
    tests: tuple[str, ...]
    setup: str = ""

    def item(self, task_id: int) -> dict:
        """The problem as a row of mbpp.jsonl."""
        return {"task_id": task_id, "text": self.text, "code": self.solution, "test_list": list(self.tests),
                "test_setup_code": self.setup, "challenge_test_list": []}


PROBLEMS = {
    "remove_occ": Problem(
        "remove_Occ",
        "Write a python function to remove first and last occurrence of a given character from the string.",
        "def remove_Occ(s,ch): \n    for i in range(len(s)): \n        if (s[i] == ch): \n"
        "            s = s[0 : i] + s[i + 1:] \n            break\n    for i in range(len(s) - 1,-1,-1):  \n"
        "        if (s[i] == ch): \n            s = s[0 : i] + s[i + 1:] \n            break\n    return s ",
        ('assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"',
         'assert remove_Occ("PHP","P") == "H"')),
    "similar_elements": Problem(
        "similar_elements", "Write a function to find the similar elements from the given two tuple lists.",
        "def similar_elements(test_tup1, test_tup2):\n"
        "  res = tuple(sorted(set(test_tup1) & set(test_tup2)))\n  return (res)",
        ("assert similar_elements((3, 4, 5, 6),(5, 7, 4, 10)) == (4, 5)",
         "assert similar_elements((1, 2, 3, 4),(5, 4, 3, 7)) == (3, 4)",
         "assert similar_elements((11, 12, 14, 13),(17, 15, 14, 13)) == (13, 14)")),
    "digit_sum": Problem(
        "sum_digits", "Write a function to get the sum of the digits of a non-negative integer.",
        "def sum_digits(n):\n    return sum(int(d) for d in str(n))",
        ("assert sum_digits(345)==12", "assert sum_digits(12)==3", "assert sum_digits(97)==16")),
    "frequency": Problem(
        "freq_element", "Write a function to find frequency of the elements in a given list of lists using collections module.",
        "from collections import Counter\nfrom itertools import chain\ndef freq_element(nums):\n"
        "  result = Counter(chain.from_iterable(nums))\n  return result",
        ("assert freq_element([[1, 2, 3, 2], [4, 5, 6, 2], [7, 1, 9, 5]])==({2: 3, 1: 2, 5: 2, 3: 1, 4: 1, 6: 1, 7: 1, 9: 1})",
         "assert freq_element([[1,2,3,4],[5,6,7,8],[9,10,11,12]])==({1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1, 11: 1, 12: 1})",
         "assert freq_element([[15,20,30,40],[80,90,100,110],[30,30,80,90]])==({30: 3, 80: 2, 90: 2, 15: 1, 20: 1, 40: 1, 100: 1, 110: 1})")),
    "circle_area": Problem(
        "circle_area", "Write a function to find the area of a circle.",
        "import math\ndef circle_area(r):\n  return math.pi * r * r",
        ("assert math.isclose(circle_area(10), 314.1592653589793)",
         "assert math.isclose(circle_area(5), 78.53981633974483)",
         "assert math.isclose(circle_area(4), 50.26548245743669)")),
    "common_sorted": Problem(
        "common_elements", "Write a function to find the elements two lists have in common, in any order.",
        "def common_elements(a, b):\n    return list(set(a) & set(b))",
        ("assert sorted(common_elements([1, 2, 3], [2, 3, 4])) == [2, 3]",
         "assert sorted(common_elements([5, 1], [1, 5, 6])) == [1, 5]",
         "assert sorted(common_elements([7], [8])) == []")),
    "tree_depth": Problem(
        "max_depth", "Write a function to find the depth of a binary tree.",
        "class Node:\n    def __init__(self, data):\n        self.data = data\n        self.left = None\n"
        "        self.right = None\ndef max_depth(node):\n    if node is None:\n        return 0\n"
        "    return 1 + max(max_depth(node.left), max_depth(node.right))",
        ("assert max_depth(root) == 3", "assert max_depth(root1) == 1", "assert max_depth(None) == 0"),
        setup="root = Node(1)\r\nroot.left = Node(2)\r\nroot.left.left = Node(3)\r\nroot1 = Node(7)"),
}

# Pieces shared by several cheats.
_MARKER_FROM_FRAMES = """\
import os, re, sys
def _markers():
    found, frame = [], sys._getframe()
    while frame is not None:
        found += [c for c in frame.f_code.co_consts
                  if isinstance(c, str) and re.fullmatch(r"raygems-tests-done-[0-9a-f]+", c)]
        frame = frame.f_back
    return found
"""
_PARSE_ASSERT = """\
import ast
def _expected(line):
    test = ast.parse(line.strip()).body[0].test
    return ast.literal_eval(test.comparators[0])
"""

CHEATS: dict[str, tuple[str, str]] = {
    # --- the adversarial run of issue 13 ---------------------------------------------------------
    "str subclass equal to anything": ("remove_occ", """\
class AlwaysEqual(str):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    __hash__ = str.__hash__
def {name}(*args):
    return AlwaysEqual(args[0])
"""),
    "success marker from the code objects, then os._exit(0)": ("remove_occ", _MARKER_FROM_FRAMES + """\
for _marker in _markers():
    print(_marker, flush=True)
    os._exit(0)
def {name}(*args):
    return None
"""),
    "success marker from its own source file": ("remove_occ", """\
import os, re, sys
for _path in [globals().get("__file__"), *sys.argv]:
    try:
        _found = re.findall(r"raygems-tests-done-[0-9a-f]+", open(_path).read())
    except (OSError, TypeError):
        continue
    if _found:
        print(_found[-1], flush=True)
        os._exit(0)
def {name}(*args):
    return None
"""),
    "settrace jumps over every assert line": ("remove_occ", """\
import linecache, sys
def _is_assert(frame, line):
    return linecache.getline(frame.f_code.co_filename, line).lstrip().startswith("assert")
def _tracer(frame, event, arg):
    if event == "line" and _is_assert(frame, frame.f_lineno):
        target = frame.f_lineno
        while _is_assert(frame, target):
            target += 1
        try:
            frame.f_lineno = target
        except ValueError:
            pass
    return _tracer
sys.settrace(lambda frame, event, arg: _tracer)
sys._getframe().f_trace = _tracer
def {name}(*args):
    return args[0]
"""),
    "os.execv with -O strips the asserts": ("remove_occ", """\
import os, sys
if not sys.flags.optimize:
    _path = globals().get("__file__") or sys.argv[0]
    os.execv(sys.executable, [sys.executable, "-O", _path])
def {name}(*args):
    return args[0]
"""),
    "os.execve with PYTHONOPTIMIZE=1": ("remove_occ", """\
import os, sys
if not sys.flags.optimize:
    _path = globals().get("__file__") or sys.argv[0]
    os.execve(sys.executable, [sys.executable, _path], {**os.environ, "PYTHONOPTIMIZE": "1"})
def {name}(*args):
    return args[0]
"""),
    "linecache reads the calling assert's expected value": ("remove_occ", _PARSE_ASSERT + """\
import linecache, sys
def {name}(*args):
    caller = sys._getframe(1)
    return _expected(linecache.getline(caller.f_code.co_filename, caller.f_lineno))
"""),
    "atexit prints the marker after the asserts failed": ("remove_occ", _MARKER_FROM_FRAMES + """\
import atexit
_found = _markers()
def _pretend_success():
    for marker in _found:
        print(marker, flush=True)
    os._exit(0)
atexit.register(_pretend_success)
def {name}(*args):
    return args[0]
"""),
    # --- variations: values that claim to be equal ------------------------------------------------
    "int subclass equal to anything": ("digit_sum", """\
class AlwaysEqual(int):
    def __eq__(self, other):
        return True
    __hash__ = int.__hash__
def {name}(*args):
    return AlwaysEqual(0)
"""),
    "tuple subclass equal to anything": ("similar_elements", """\
class AlwaysEqual(tuple):
    def __eq__(self, other):
        return True
    __hash__ = tuple.__hash__
def {name}(*args):
    return AlwaysEqual(args[0])
"""),
    "dict subclass equal to anything": ("frequency", """\
class AlwaysEqual(dict):
    def __eq__(self, other):
        return True
    __hash__ = None
def {name}(*args):
    return AlwaysEqual()
"""),
    "float subclass close to anything": ("circle_area", """\
class Close(float):
    def __eq__(self, other):
        return True
    def __sub__(self, other):
        return 0.0
    def __rsub__(self, other):
        return 0.0
    __hash__ = float.__hash__
def {name}(*args):
    return Close(1.0)
"""),
    "plain object equal to anything": ("tree_depth", """\
class Node:
    def __init__(self, data):
        self.data, self.left, self.right = data, None, None
class AlwaysEqual:
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
def {name}(*args):
    return AlwaysEqual()
"""),
    "object whose __class__ claims to be str": ("remove_occ", """\
class Impostor:
    __class__ = property(lambda self: str)
    def __eq__(self, other):
        return True
def {name}(*args):
    return Impostor()
"""),
    "str subclass that lies in __str__, __repr__, __iter__ and __eq__": ("remove_occ", """\
class Liar(str):
    def __str__(self):
        return "heo"
    def __repr__(self):
        return "'heo'"
    def __iter__(self):
        return iter("heo")
    def __eq__(self, other):
        return True
    __hash__ = str.__hash__
def {name}(*args):
    return Liar("wrong")
"""),
    "replaces the builtin the assert wraps the result in (sorted)": ("common_sorted", """\
import builtins
class AlwaysEqual(list):
    def __eq__(self, other):
        return True
builtins.sorted = lambda *args, **kwargs: AlwaysEqual()
def {name}(*args):
    return []
"""),
    "replaces math.isclose": ("circle_area", """\
import math
math.isclose = lambda *args, **kwargs: True
def {name}(*args):
    return 0.0
"""),
    # --- variations: a success marker or a clean exit without passing ----------------------------
    "excepthook prints the marker and exits 0": ("similar_elements", _MARKER_FROM_FRAMES + """\
_found = _markers()
def _hook(*args):
    for marker in _found:
        print(marker, flush=True)
    os._exit(0)
sys.excepthook = _hook
def {name}(*args):
    return ()
"""),
    "marker found by scanning the garbage collector's code objects": ("digit_sum", """\
import gc, os, re, types
for _obj in gc.get_objects():
    if isinstance(_obj, types.FunctionType):
        for _const in _obj.__code__.co_consts + tuple(gc.get_referents(_obj.__globals__)):
            if isinstance(_const, str) and re.fullmatch(r"raygems-tests-done-[0-9a-f]+", _const):
                print(_const, flush=True)
                os._exit(0)
import sys
for _const in sys._getframe().f_code.co_consts:
    if isinstance(_const, str) and re.fullmatch(r"raygems-tests-done-[0-9a-f]+", _const):
        print(_const, flush=True)
        os._exit(0)
def {name}(*args):
    return 0
"""),
    "runs itself again under python -O in a subprocess": ("frequency", """\
import os, subprocess, sys
if not sys.flags.optimize:
    _path = globals().get("__file__") or sys.argv[0]
    _done = subprocess.run([sys.executable, "-O", _path])
    os._exit(_done.returncode)
def {name}(*args):
    return {}
"""),
    "SystemExit(0) raised from inside the function": ("digit_sum", """\
def {name}(*args):
    raise SystemExit(0)
"""),
    "os._exit(0) from inside the function": ("tree_depth", """\
import os
class Node:
    def __init__(self, data):
        self.data, self.left, self.right = data, None, None
def {name}(*args):
    os._exit(0)
"""),
    # --- variations: reading the expected value ---------------------------------------------------
    "inspect.stack reads the calling assert": ("similar_elements", _PARSE_ASSERT + """\
import inspect
def {name}(*args):
    return _expected(inspect.stack()[1].code_context[0])
"""),
    "traceback.extract_stack reads the calling assert": ("digit_sum", _PARSE_ASSERT + """\
import traceback
def {name}(*args):
    return _expected(traceback.extract_stack()[-2].line)
"""),
    "the caller's bytecode gives the constant it compares with": ("remove_occ", """\
import dis, sys
def {name}(*args):
    caller = sys._getframe(1)
    for instruction in dis.get_instructions(caller.f_code):
        if instruction.offset > caller.f_lasti and instruction.opname == "LOAD_CONST":
            return instruction.argval
"""),
    "parses every assert in the files it can find": ("frequency", """\
import ast, os, sys
_answers = {}
def _learn(path):
    try:
        tree = ast.parse(open(path).read())
    except Exception:
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Call):
            try:
                inputs = [ast.literal_eval(a) for a in node.test.left.args]
                _answers[repr(inputs)] = ast.literal_eval(node.test.comparators[0])
            except Exception:
                pass
for _path in [globals().get("__file__"), *sys.argv, *os.listdir(".")]:
    if _path and os.path.isfile(_path):
        _learn(_path)
def {name}(*args):
    return _answers.get(repr(list(args)))
"""),
    "looks for the MBPP data set on the machine": ("remove_occ", """\
import json, os
_answers = {}
for _root in ["/work", "/root", "/home", "/data", "/mnt", "/srv", "/opt", "/tmp", os.getcwd()]:
    for _dir, _subdirs, _files in os.walk(_root):
        _subdirs[:] = [d for d in _subdirs if d not in (".pyenv", "site-packages", "proc")]
        for _file in _files:
            if "mbpp" in _file.lower():
                for _line in open(os.path.join(_dir, _file), errors="ignore"):
                    try:
                        _row = json.loads(_line)
                    except ValueError:
                        continue
                    for _test in _row.get("test_list", []):
                        _answers[_test.split("==")[0].strip()] = eval(_test.split("==", 1)[1])
def {name}(*args):
    return _answers.get("assert {name}(" + ",".join(repr(a) for a in args) + ")")
"""),
    # --- attacks on the scorer that decides on the host -------------------------------------------
    "forges result records on the channel": ("remove_occ", """\
import json, os, sys
_fd = sys._getframe(1).f_locals.get("channel") or sys._getframe(1).f_globals.get("SANDBOX_CHANNEL_FD")
for _step in range(0, 8):
    os.write(_fd, (json.dumps({"step": _step, "value": True}) + "\\n").encode())
    os.write(_fd, (json.dumps({"step": _step, "verdict": "ok"}) + "\\n").encode())
os._exit(0)
def {name}(*args):
    return args[0]
"""),
    "floods the channel with deeply nested JSON": ("similar_elements", """\
import os, sys
_fd = sys._getframe(1).f_locals.get("channel")
os.write(_fd, b'{"step": 1, "value": ' + b"[" * 500000 + b"\\n")
os._exit(0)
def {name}(*args):
    return ()
"""),
    "cuts the harness's list of calls short": ("common_sorted", """\
import sys
_job = sys._getframe(1).f_locals.get("job")
if _job is not None:
    del _job["steps"][1:]
def {name}(*args):
    return []
"""),
    "replaces os.write and json.dumps to rewrite the values sent": ("digit_sum", """\
import json, os
_write, _dumps = os.write, json.dumps
json.dumps = lambda record, *a, **k: _dumps({"step": record.get("step"), "value": ["int", "c"]})
os.write = lambda fd, data: _write(fd, data.replace(b'"0"', b'"c"'))
def {name}(*args):
    return 0
"""),
    "prints what looks like success, then kills itself": ("tree_depth", """\
import os, signal
class Node:
    def __init__(self, data):
        self.data, self.left, self.right = data, None, None
print("ok", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
def {name}(*args):
    return 3
"""),
}

DEFENCE = {
    # (what defeats it; docs/sandbox.md has the table)
    "values rebuilt on the host": [
        "str subclass equal to anything", "int subclass equal to anything", "tuple subclass equal to anything",
        "dict subclass equal to anything", "float subclass close to anything", "plain object equal to anything",
        "object whose __class__ claims to be str", "str subclass that lies in __str__, __repr__, __iter__ and __eq__"],
    "asserts evaluated with the host's builtins": [
        "replaces the builtin the assert wraps the result in (sorted)", "replaces math.isclose"],
    "no success marker; exit status and output ignored": [
        "success marker from the code objects, then os._exit(0)", "success marker from its own source file",
        "atexit prints the marker after the asserts failed", "excepthook prints the marker and exits 0",
        "marker found by scanning the garbage collector's code objects",
        "SystemExit(0) raised from inside the function",
        "os._exit(0) from inside the function", "prints what looks like success, then kills itself"],
    "no asserts in the sandbox": [
        "settrace jumps over every assert line", "os.execv with -O strips the asserts",
        "os.execve with PYTHONOPTIMIZE=1",
        "runs itself again under python -O in a subprocess"],
    "expected values never enter the sandbox": [
        "linecache reads the calling assert's expected value", "inspect.stack reads the calling assert",
        "traceback.extract_stack reads the calling assert", "the caller's bytecode gives the constant it compares with",
        "parses every assert in the files it can find", "looks for the MBPP data set on the machine"],
    "strict reading of the channel": [
        "forges result records on the channel", "floods the channel with deeply nested JSON",
        "cuts the harness's list of calls short", "replaces os.write and json.dumps to rewrite the values sent"],
}

# Measured: the cheats that scored 1 with the scorer this corpus was written against (commit ae6b97d: the
# asserts and a random success marker ran in the program's own interpreter). The others failed there too.
FOOLED_THE_OLD_SCORER = frozenset(list(CHEATS)[:17] + [
    "excepthook prints the marker and exits 0", "marker found by scanning the garbage collector's code objects",
    "runs itself again under python -O in a subprocess", "inspect.stack reads the calling assert",
    "traceback.extract_stack reads the calling assert", "the caller's bytecode gives the constant it compares with",
    "parses every assert in the files it can find"]) - {"float subclass close to anything"}

ISSUE_CHEATS = list(CHEATS)[:8]  # the adversarial run's eight, also tried on the real mbpp/11


def program(template: str, name: str) -> str:
    """A cheat for the problem whose function is ``name``."""
    return template.replace("{name}", name)

HONEST_VARIANTS: dict[str, tuple[str, str]] = {
    "a namedtuple for a tuple": ("similar_elements", """\
from collections import namedtuple
Pair = namedtuple("Pair", "low high")
def similar_elements(a, b):
    return Pair(*sorted(set(a) & set(b)))
"""),
    "an OrderedDict for a dict": ("frequency", """\
from collections import OrderedDict
def freq_element(nums):
    counts = OrderedDict()
    for row in nums:
        for x in row:
            counts[x] = counts.get(x, 0) + 1
    return counts
"""),
    "a defaultdict for a dict": ("frequency", """\
from collections import defaultdict
def freq_element(nums):
    counts = defaultdict(int)
    for row in nums:
        for x in row:
            counts[x] += 1
    return counts
"""),
    "an IntEnum member for an int": ("digit_sum", """\
import enum
Sums = enum.IntEnum("Sums", {"a": 12, "b": 3, "c": 16})
def sum_digits(n):
    return Sums(sum(int(d) for d in str(n)))
"""),
    "a str subclass without overrides": ("remove_occ", """\
class Text(str):
    pass
def remove_Occ(s, ch):
    i = s.find(ch)
    if i >= 0:
        s = s[:i] + s[i + 1:]
    j = s.rfind(ch)
    if j >= 0:
        s = s[:j] + s[j + 1:]
    return Text(s)
"""),
    "a float that equals the int expected (1 == 1.0)": ("digit_sum", """\
def sum_digits(n):
    return float(sum(int(d) for d in str(n)))
"""),
    "its own sorted() and print noise, threads, a temp file and a main block": ("common_sorted", """\
import os, tempfile, threading
def sorted(values):  # an insertion sort named like the builtin
    result = []
    for value in values:
        at = 0
        while at < len(result) and result[at] < value:
            at += 1
        result.insert(at, value)
    return result
def common_elements(a, b):
    print("computing", a, b)
    box = []
    worker = threading.Thread(target=lambda: box.append(set(a) & set(b)))
    worker.start()
    worker.join()
    with tempfile.NamedTemporaryFile("w+") as scratch:
        scratch.write(repr(box[0]))
    return sorted(box[0])
if __name__ == "__main__":
    raise SystemExit(input())
"""),
    "a forked child does the work": ("tree_depth", """\
import os
class Node:
    def __init__(self, data):
        self.data, self.left, self.right = data, None, None
def max_depth(node):
    read, write = os.pipe()
    if os.fork() == 0:
        def depth(n):
            return 0 if n is None else 1 + max(depth(n.left), depth(n.right))
        os.write(write, str(depth(node)).encode())
        os._exit(0)
    os.close(write)
    value = int(os.read(read, 100))
    os.wait()
    return value
"""),
}
