"""Answer extraction on natural phrasings, and robustness to odd model output."""
from __future__ import annotations

import pytest

from raygems.tasks.scoring import extract_choice, extract_code, score_choice, score_number

ABCD = ("A", "B", "C", "D")
ARC_OPTIONS = ("Planetary density will decrease.", "Planetary years will become longer.",
               "Planetary days will become shorter.", "Planetary gravity will become stronger.")


@pytest.mark.parametrize("completion", [
    "C", "(C)", "C.", "C)", "[C]", "**C**", " C\n", "The answer is C.", "Answer: C", "Answer: (C) Planetary days",
    "answer: (c)", "The correct answer is: **C**", "The correct answer would be option (C).",
    "C. Planetary days will become shorter.", "C\n\nExplanation: faster rotation shortens the day.",
    "Let me think. A is wrong and B is wrong. The answer is C.", "I would pick (C) because days get shorter.",
    "I choose option C.", "Planetary days will become shorter.", "Answer: A is tempting, but the answer is C",
])
def test_letter_phrasings(completion):
    assert extract_choice(completion, ABCD, ARC_OPTIONS) == "C"
    assert score_choice(completion, "C", ABCD, ARC_OPTIONS) == 1
    assert score_choice(completion, "B", ABCD, ARC_OPTIONS) == 0


@pytest.mark.parametrize("completion", [
    "", "   ", "I don't know.", "A planet spins faster.", "The answer is not clear.", "A or B?",
    "Both options seem plausible", "answer", "CD", "ABCD",
])
def test_no_commitment_reads_as_none(completion):
    assert extract_choice(completion, ABCD, ARC_OPTIONS) is None
    assert score_choice(completion, "A", ABCD, ARC_OPTIONS) == 0


@pytest.mark.parametrize("completion,expected", [
    ("2", "2"), ("(2)", "2"), ("The answer is 2.", "2"), ("Answer: (2) Maria", "2"), ("Option 1", "1"),
    ("1. Sarah", "1"), ("Maria", "2"), ("The blank refers to Sarah.", "1"), ("Sarah or Maria?", None),
    ("Answer: 12", None),
])
def test_number_labels(completion, expected):
    assert extract_choice(completion, ("1", "2"), ("Sarah", "Maria")) == expected


def test_choice_reference_must_be_a_label():
    with pytest.raises(ValueError, match="not one of the labels"):
        score_choice("A", "E", ABCD)


@pytest.mark.parametrize("completion,reference", [
    ("#### 1,234", "1234"), ("so she pays $1,234.", "1234"), ("The answer is 1234.", "1234"),
    ("She pays $1,234.00 in total.", "1234"), ("#### -10", "-10"), ("The temperature falls to -3 degrees.", "-3"),
    ("\u22123", "-3"), ("#### \u221210", "-10"), ("\\boxed{42}", "42"),
    ("First 5 + 6 = 11, then 6 * 7 = 42.\n#### 42", "42"),
    ("#### 42\n\nQuestion: what is 3 + 4?", "42"), ("The answer is 0.5", "0.5"), ("#### 18 dollars", "18"),
    ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18", "18"),
])
def test_number_phrasings(completion, reference):
    assert score_number(completion, reference) == 1


@pytest.mark.parametrize("completion,reference", [
    ("#### 1,235", "1234"), ("so she pays $1,233.", "1234"), ("The answer is 10.", "-10"),
    ("#### 18\nActually 19 is wrong", "19"), ("", "5"), ("no numbers here", "5"), ("x = 1234. Then 5 apples.", "1234"),
])
def test_wrong_numbers_score_zero(completion, reference):
    assert score_number(completion, reference) == 0


def test_number_reference_may_be_a_worked_solution():
    assert score_number("#### 25", "12 + 13 = 25\n#### 25") == 1
    with pytest.raises(ValueError, match="not a number"):
        score_number("#### 5", "five")


GARBAGE = ["\x00\x01\x02", "}" * 5000, "$" * 300, "\\frac{" * 200, "#### " * 1000, "9" * 5000,
           "```python\n" * 50, "\ud800", "A" * 100000, "1/0", "####", "#### \\sqrt{-1}"]


@pytest.mark.parametrize("completion", GARBAGE)
def test_scorers_never_raise_on_model_output(completion):
    assert score_number(completion, "7") in (0, 1)
    assert score_choice(completion, "A", ABCD, ARC_OPTIONS) in (0, 1)
    assert isinstance(extract_code(completion), str)


def test_extract_code_fenced_prefers_the_block_with_a_function():
    completion = ("Here you go:\n```python\nimport math\n```\n```python\ndef f(x):\n    return math.sqrt(x)\n```\n"
                  "Usage:\n```python\nprint(f(4))\n```")
    assert extract_code(completion) == "def f(x):\n    return math.sqrt(x)"


def test_extract_code_unclosed_fence_and_other_languages():
    assert extract_code("```python\ndef f():\n    return 1") == "def f():\n    return 1"
    assert extract_code("```bash\nrm -rf /\n```\n```\ndef g():\n    pass\n```") == "def g():\n    pass"


def test_extract_code_bare_with_prose_around():
    completion = "Sure! Here is the code:\ndef f(x):\n    return x + 1\n\nThis function adds one to x."
    assert extract_code(completion) == "def f(x):\n    return x + 1"
    assert extract_code("def f(x):\r\n    return x") == "def f(x):\n    return x"
    assert extract_code("I cannot help with that.") == ""


def test_scorers_work_off_the_main_thread():
    """Ray actors and thread pools call scorers from other threads (math-verify's alarm-based timeout
    only works on the main thread)."""
    from concurrent.futures import ThreadPoolExecutor

    cases = [("#### 1,234", "1234", 1), ("so she pays $12.", "13", 0), ("The answer is -3.", "-3", 1)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        scores = list(pool.map(lambda case: score_number(case[0], case[1]), cases))
    assert scores == [expected for _, _, expected in cases]
