"""Answer extraction and scoring for model completions.

Every function here takes raw model output and never raises on it: a completion that cannot be read
scores 0. The rules, in the order they are tried, are documented in docs/tasks.md.

* Numbers (GSM8K style): ``score_number`` reads the text after the last ``####`` when there is one, and
  otherwise the whole completion; the number itself is extracted and compared by ``math-verify``
  (Hugging Face's answer verifier), which understands "1,234", "$1,234.", "-5", "3/4", "\\boxed{7}" and
  "The answer is 7".
* Options (ARC, MMLU, Winogrande): ``score_choice`` finds the option label the completion commits to:
  an answer statement ("Answer: (C)", "the answer is C"), else a label at the very start ("C", "(C)",
  "C. text"), else an option statement ("I choose option 2"), else a single bracketed label anywhere
  ("I pick (B)"), else the text of exactly one option (``extract_choice`` has the details). No library
  reads option letters, so these are small regular expressions.
* Code (MBPP): ``extract_code`` takes the fenced block that defines a function (or the bare code,
  trimmed of surrounding prose); running it is the sandbox's job (``raygems.tasks.sandbox``).
"""
from __future__ import annotations

import ast
import re
import threading
import warnings
from collections.abc import Sequence

# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------

# Unicode look-alikes that models (and some datasets) write for ASCII characters in numbers.
_NUMBER_TRANSLATION = str.maketrans({
    "\u2212": "-",  # minus sign
    "\u2013": "-",  # en dash used as a minus
    "\u2014": "-",
    "\u00a0": " ",  # no-break space
    "\u202f": " ",  # narrow no-break space (thousands separator in some locales)
    "\uff04": "$",
})
_MAX_NUMBER_TEXT = 4000  # characters of the completion's tail handed to the parser (bounds its time)


def _parsing_timeout() -> int | None:
    """math-verify's timeout uses SIGALRM, which only the main thread may set (Ray actors and thread
    pools call scorers from other threads): no timeout there, the text is bounded instead."""
    return 5 if threading.current_thread() is threading.main_thread() else None


def final_answer_text(completion: str) -> str:
    """The part of a completion that holds its final numeric answer.

    GSM8K's convention is ``#### N`` on the last line; when a completion uses it, only the first line
    after the last ``####`` is read (what follows is often a restated question or more text).
    Otherwise the whole completion is read (math-verify then prefers "the answer is N" and falls back to
    the last number).
    """
    text = str(completion).translate(_NUMBER_TRANSLATION)
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip()
        lines = tail.splitlines()
        return lines[0] if lines else ""
    return text[-_MAX_NUMBER_TEXT:]


def parse_number(text: str) -> list:
    """math-verify's parse of a number (or expression) in ``text``; [] when none is found."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse

    try:
        return parse(
            text,
            extraction_config=[LatexExtractionConfig(), ExprExtractionConfig()],
            parsing_timeout=_parsing_timeout(),
        )
    except Exception:  # math-verify and sympy can raise on odd input; unreadable scores 0
        return []


def _parse_reference_number(reference: str) -> list:
    """The reference number; a reference that is a worked solution ending in ``#### N`` gives N."""
    from math_verify import ExprExtractionConfig, parse

    text = final_answer_text(str(reference)).replace(",", "").strip()
    return parse(text, extraction_config=[ExprExtractionConfig()], parsing_timeout=_parsing_timeout())


def score_number(completion: str, reference: str | int | float) -> int:
    """1 when the completion's final number equals ``reference`` (GSM8K-style answers), else 0.

    Raises ValueError only for a ``reference`` that is not a number (a bug in the caller, not in the
    model's output)."""
    gold = _parse_reference_number(str(reference))
    if not gold:
        raise ValueError(f"reference {reference!r} is not a number")
    try:
        from math_verify import verify

        predicted = parse_number(final_answer_text(completion))
        if not predicted:
            return 0
        return int(bool(verify(gold, predicted, timeout_seconds=_parsing_timeout())))
    except Exception:  # unreadable model output scores 0
        return 0


# --------------------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------------------

_MARKDOWN = re.compile(r"[*_`]+")


def _label_pattern(labels: Sequence[str]) -> str:
    # Longest first so that a label never matches as a prefix of another ("1" vs "10").
    return "|".join(re.escape(label) for label in sorted(labels, key=len, reverse=True))


def extract_choice(completion: str, labels: Sequence[str], options: Sequence[str] | None = None) -> str | None:
    """The option label the completion commits to, or None.

    Rules, first that applies wins:
      1. an answer statement, the last one in the text: "Answer: (C)", "the answer is C", "The correct
         answer would be option 2";
      2. a label at the very start: "C", "(C)", "C.", "C) text", "C: text", "2 - Maria";
      3. an option statement, the last one: "I choose option B", "choice (2)";
      4. exactly one distinct bracketed label anywhere: "I would pick (B) because ...";
      5. the text of exactly one option, when ``options`` (option texts in label order) are given:
         Winogrande answers are often the name itself.
    Bare labels are matched case-sensitively (so the article "a" is never option "A"); bracketed
    ones in either case ("(c)"). A label must stand alone, not be part of a word or a longer number.
    """
    labels = [str(label) for label in labels]
    if not labels:
        raise ValueError("labels must not be empty")
    text = _MARKDOWN.sub("", str(completion)).strip()
    if not text:
        return None
    by_folded = {label.casefold(): label for label in labels}
    label = _label_pattern(labels)
    bare = rf"(?<![A-Za-z0-9])({label})(?![A-Za-z0-9])"
    bracketed = rf"[\(\[]\s*(?i:({label}))\s*[\)\]]"
    labelled = rf"(?:{bracketed}|{bare})"

    def picked(match: re.Match) -> str:
        value = next(group for group in match.groups() if group is not None)
        return by_folded.get(value.casefold(), value)

    verb = r"(?:\s+(?:is|was|would\s+be|will\s+be|should\s+be|must\s+be))?"
    separator = r"\s*(?:[:=\-]\s*)?"
    noun = r"(?i:(?:option|choice|letter|number)\s*)?"

    # 1. Answer statements; the last one wins ("... so the answer is C").
    answer = re.compile(rf"(?i:\banswer\b){verb}{separator}{noun}{separator}{labelled}")
    matches = list(answer.finditer(text))
    if matches:
        return picked(matches[-1])

    # 2. A label at the very start.
    leading = re.match(rf"^(?:{bracketed}|({label})(?:\s*$|\s*[\.\):,\-]|\s*\n))", text)
    if leading:
        return picked(leading)

    # 3. Option statements; the last one wins.
    option = re.compile(rf"(?i:\b(?:option|choice)\b){verb}{separator}{labelled}")
    matches = list(option.finditer(text))
    if matches:
        return picked(matches[-1])

    # 4. Exactly one distinct bracketed label anywhere.
    found = {picked(m) for m in re.finditer(bracketed, text)}
    if len(found) == 1:
        return found.pop()

    # 5. The text of exactly one option.
    if options:
        lowered = text.casefold()
        named = [
            lab for lab, option_text in zip(labels, options)
            if str(option_text).strip() and re.search(
                rf"(?<![a-z0-9]){re.escape(str(option_text).strip().casefold())}(?![a-z0-9])", lowered)
        ]
        if len(named) == 1:
            return named[0]
    return None


def score_choice(completion: str, reference: str, labels: Sequence[str],
                 options: Sequence[str] | None = None) -> int:
    """1 when the completion picks option ``reference`` among ``labels`` (e.g. ("A","B","C","D") or
    ("1","2")), else 0. ``options`` (option texts in label order) lets a completion that answers with an
    option's text instead of its label count."""
    labels = [str(label) for label in labels]
    if str(reference) not in labels:
        raise ValueError(f"reference {reference!r} is not one of the labels {labels}")
    try:
        return int(extract_choice(completion, labels, options) == str(reference))
    except Exception:
        return 0


# --------------------------------------------------------------------------------------------------
# Code
# --------------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+\-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_CODE_START = re.compile(r"^(?:def |class |import |from |@|async def |[A-Za-z_][A-Za-z0-9_]*\s*=)")
_PYTHON_TAGS = {"", "python", "python3", "py", "py3"}


_WARNINGS_LOCK = threading.Lock()  # warnings.catch_warnings changes process-wide state


def quietly(function, *args):
    """Parse or compile code without its warnings (invalid escape sequences, ``is`` with a literal): a model's
    answer, or a dataset's tests."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)


def _compiles(code: str) -> bool:
    """Whether ``code`` parses as Python (parse only; nothing runs)."""
    try:
        quietly(ast.parse, code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def extract_code(completion: str) -> str:
    """The Python program in a completion ("" when there is none).

    * Fenced: among the ``` blocks tagged python (or untagged), the first one that defines a function,
      else the first one. An unclosed final fence (output cut at the token limit) still counts.
    * Bare: from the first line that looks like code (``def``, ``import``, ``class``, a decorator or an
      assignment) on; trailing prose lines are dropped until the code parses.
    """
    text = str(completion).replace("\r\n", "\n")
    blocks = [body for tag, body in _FENCE.findall(text) if tag.lower() in _PYTHON_TAGS]
    if blocks:
        with_def = [b for b in blocks if re.search(r"^\s*(?:async\s+)?def ", b, re.MULTILINE)]
        return (with_def or blocks)[0].strip("\n")
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if _CODE_START.match(line)), None)
    if start is None:
        return text.strip("\n") if _compiles(text) else ""
    body = lines[start:]
    # Drop trailing prose (an explanation after the function) until the code parses; bounded.
    for end in range(len(body), max(0, len(body) - 200), -1):
        candidate = "\n".join(body[:end]).rstrip()
        if candidate and _compiles(candidate):
            return candidate
    return "\n".join(body).rstrip()
