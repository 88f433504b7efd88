"""Model cards: the YAML front matter and text of a repository's README.md, and what they document.

The paper's documentation check (its Table 6) asks, for each hidden gem: does the card report evaluation
results at all, and if so, for the task the gem is good at? A card documents an evaluation when

* its `model-index` metadata lists results (the hub's structured evaluation format), or
* its text has an evaluation line: a markdown table row or a `name: number` line that names a known
  benchmark (GSM8K, MBPP, HumanEval, MMLU, ...) next to a number, or any row with a number in a table
  whose header says it holds scores (`benchmark`, `score`, `accuracy`, `pass@1`, ...).

Each documented benchmark is put in a skill family (math, code, arc, commonsense, knowledge, ...). A task's
family is its own metadata (`raygems.tasks.info.task_info(task).skill_family`). A task's
documentation is *relevant* when the card documents a benchmark of the task's family (a Fortran or
HumanEval score counts for MBPP, as the paper counts it), *irrelevant* when the card documents evaluations
of other families only, and *none* when it documents no evaluation.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import yaml

from raygems.tasks.info import task_info

#: Documentation states of one (card, task) pair, with the symbols the paper's Table 6 uses
#: ("unavailable": the card could not be read, e.g. a gated repository without access).
DOC_RELEVANT, DOC_IRRELEVANT, DOC_NONE, DOC_UNAVAILABLE = "relevant", "irrelevant", "none", "unavailable"
DOC_SYMBOLS = {DOC_RELEVANT: "✓", DOC_IRRELEVANT: "●", DOC_NONE: "✗", DOC_UNAVAILABLE: "?"}

#: Benchmark name -> (pattern, skill family) of the benchmarks a card may name. Patterns are matched
#: case-insensitively on word boundaries. Family None: the task's own (`task_info(name).skill_family`, declared
#: by its Task class or in `raygems.tasks.info.BENCHMARKS`); a family given here is of a benchmark for which no
#: task declares one.
BENCHMARK_FAMILIES: dict[str, tuple[str, str | None]] = {
    # name: (regex, family)
    "gsm8k": (r"gsm[-_ ]?8k", None),
    "math": (r"(?:hendrycks[-_ ]?)?math(?:[-_ ]?500)?|minerva[-_ ]?math|competition[-_ ]math", None),
    "aime": (r"aime(?:[-_ ]?\d{2,4})?", "math"),
    "svamp": (r"svamp|asdiv|mathqa|mawps|tabmwp", "math"),
    "mbpp": (r"mbpp\+?", None),
    "humaneval": (r"human[-_ ]?eval\+?|humaneval[-_ ]?\w*", None),
    "livecodebench": (r"livecodebench|bigcodebench|ds[-_ ]?1000|multipl[-_ ]?e|codecontests|cruxeval", "code"),
    "pass@k": (r"pass@\d+", "code"),
    "arc_challenge": (r"arc[-_ ]?(?:challenge|c)|ai2[-_ ]?arc|arc", None),
    "arc_easy": (r"arc[-_ ]?(?:easy|e)", "arc"),
    "winogrande": (r"winogrande|winograd|wsc", None),
    "hellaswag": (r"hellaswag|piqa|siqa|social[-_ ]?iqa|openbookqa|boolq|copa|commonsenseqa", None),
    "mmlu": (r"c?mmlu(?:[-_ ]?(?:pro|redux))?|kmmlu|agieval", None),
    "truthfulqa": (r"truthful[-_ ]?qa", "truthfulness"),
    "ifeval": (r"ifeval", "instruction_following"),
    "bbh": (r"bbh|big[-_ ]?bench(?:[-_ ]?hard)?", "reasoning"),
    "gpqa": (r"gpqa|musr", "reasoning"),
    "mt_bench": (r"mt[-_ ]?bench|alpaca[-_ ]?eval|arena[-_ ]?hard", "chat"),
    "routerbench": (r"router[-_ ]?bench", "routerbench"),
}

#: Task names that stand for a benchmark suite as a whole (RouterBench_s in the paper).
AGGREGATE_TASKS = ("overall", "all", "routerbench")

_SCORE_HEADER = re.compile(
    r"benchmark|task|dataset|eval|metric|score|accuracy|\bacc\b|pass@\d|exact[-_ ]?match|\bem\b|f1",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d+)?\s*%?(?![\w.])")
_COMPILED = {name: re.compile(rf"(?<![a-z0-9])(?:{rx})(?![a-z0-9])", re.IGNORECASE)
             for name, (rx, _) in BENCHMARK_FAMILIES.items()}


def normalise_task(task: str) -> str:
    """'ARC-Challenge' -> 'arc_challenge': task names from matrices, results and the registry compare equal."""
    return str(task).strip().lower().replace("-", "_").replace(" ", "_")


@functools.lru_cache(maxsize=None)
def benchmark_family(name: str) -> str:
    """The skill family of benchmark `name` (a key of BENCHMARK_FAMILIES)."""
    family = BENCHMARK_FAMILIES[name][1] or task_info(name).skill_family
    if family is None:
        raise ValueError(f"benchmark {name!r} has no skill family: give one in BENCHMARK_FAMILIES or declare the "
                         f"task's skill_family")
    return family


def benchmarks_in(text: str) -> set[str]:
    """The known benchmark names mentioned in `text` (keys of BENCHMARK_FAMILIES)."""
    found = {name for name, rx in _COMPILED.items() if rx.search(text)}
    # A bare 'arc' pattern also matches inside 'arc-easy': keep the most specific name.
    if "arc_easy" in found and not re.search(r"arc[-_ ]?(?:challenge|c)(?![a-z])", text, re.IGNORECASE):
        found.discard("arc_challenge")
    return found


@dataclass(frozen=True)
class EvalEntry:
    """One evaluation a card reports: a benchmark (as the card names it), a value, where it was found."""

    name: str
    value: float | None
    source: str                      # "model-index" | "text"
    benchmarks: frozenset[str] = frozenset()

    @property
    def families(self) -> set[str]:
        return {benchmark_family(b) for b in self.benchmarks}


@dataclass
class ModelCard:
    """A parsed README.md: front-matter metadata plus the markdown text below it."""

    model_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    text: str = ""

    # ------------------------------------------------------------------ metadata
    @property
    def base_models(self) -> list[str]:
        """Parents named by `base_model` (a string or a list on the hub)."""
        return _as_list(self.metadata.get("base_model"))

    @property
    def base_model_relation(self) -> str | None:
        value = self.metadata.get("base_model_relation")
        return str(value) if value else None

    @property
    def pipeline_tag(self) -> str | None:
        return _text_or_none(self.metadata.get("pipeline_tag"))

    @property
    def library_name(self) -> str | None:
        return _text_or_none(self.metadata.get("library_name"))

    @property
    def tags(self) -> list[str]:
        return [str(t) for t in _as_list(self.metadata.get("tags"))]

    # ------------------------------------------------------------------ evaluations
    @cached_property
    def eval_entries(self) -> list[EvalEntry]:
        """Every evaluation result the card reports, from model-index first, then from the text."""
        return _model_index_entries(self.metadata.get("model-index")) + _text_entries(self.text)

    @property
    def has_model_index(self) -> bool:
        return any(e.source == "model-index" for e in self.eval_entries)

    @property
    def has_eval_results(self) -> bool:
        return bool(self.eval_entries)

    @property
    def documented_benchmarks(self) -> set[str]:
        return set().union(*(e.benchmarks for e in self.eval_entries)) if self.eval_entries else set()

    @property
    def documented_families(self) -> set[str]:
        return {benchmark_family(b) for b in self.documented_benchmarks}

    def documentation_for(self, task: str, components: tuple[str, ...] = ()) -> str:
        """DOC_RELEVANT, DOC_IRRELEVANT or DOC_NONE for `task`.

        `components` names the tasks an aggregate task (overall / RouterBench) is made of: the aggregate is
        documented relevantly when the card reports RouterBench itself or a benchmark of every component's
        family. A task with no known family is relevant only when the card names it.
        """
        if not self.has_eval_results:
            return DOC_NONE
        key = normalise_task(task)
        families = self.documented_families
        family = task_info(key).skill_family        # the task's own metadata (name normalised)
        if key in AGGREGATE_TASKS:
            needed = {task_info(normalise_task(c)).skill_family or normalise_task(c) for c in components}
            relevant = "routerbench" in families or (bool(needed) and needed <= families)
        elif family is not None:
            relevant = family in families
        else:
            relevant = any(key in normalise_task(e.name) for e in self.eval_entries)
        return DOC_RELEVANT if relevant else DOC_IRRELEVANT


class ModelCardError(ValueError):
    """A card whose front matter cannot be read. `reason` says why in one line, without the model's name."""

    def __init__(self, model_id: str, reason: str):
        super().__init__(f"model card of {model_id or '<unknown>'}: {reason}")
        self.reason = reason


_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)(?:\r?\n)?^---[ \t]*(?:\r?\n|\Z)", re.DOTALL | re.MULTILINE)


def parse_model_card(text: str, model_id: str = "") -> ModelCard:
    """Split a README.md into YAML front matter (between leading `---` lines) and the markdown text.

    A card without front matter, or with front matter that is not a YAML mapping, gets empty metadata
    (the hub shows such cards too); broken YAML raises ModelCardError (a ValueError) naming the model and the
    line of the README at fault.
    """
    text = text.lstrip("\ufeff")
    match = _FRONT_MATTER.match(text)
    if not match:
        return ModelCard(model_id=model_id, metadata={}, text=text)
    try:
        metadata = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise ModelCardError(model_id, f"front matter is not valid YAML ({_yaml_problem(exc)})") from None
    if not isinstance(metadata, dict):
        metadata = {}
    return ModelCard(model_id=model_id, metadata=metadata, text=text[match.end():])


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML found wrong, and where, in one line (README line numbers: the front matter starts on line 2)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    return f"{problem} on line {mark.line + 2}" if mark is not None else problem


_SALVAGE_ID = r"['\"]?([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)['\"]?"


def salvage_base_models(text: str) -> list[str]:
    """The `base_model` ids a card names, read line by line from front matter that is not valid YAML:
    `base_model: org/name`, `base_model: [a/b, c/d]`, or `base_model:` followed by `- org/name` lines. What
    cannot be read this way is left out (an empty list: the card says nothing usable about its parents)."""
    text = text.lstrip("\ufeff")
    if not re.match(r"---[ \t]*\r?\n", text):
        return []
    lines = text.splitlines()[1:]
    for i, line in enumerate(lines):
        if line.strip() == "---":
            break
        key, sep, value = line.partition(":")
        if not sep or key.strip() != "base_model":
            continue
        value = value.split(" #")[0].strip()
        if value.startswith("["):
            return re.findall(_SALVAGE_ID, value)
        if value:
            return [m.group(1)] if (m := re.fullmatch(_SALVAGE_ID, value)) else []
        items = []
        for item in lines[i + 1:]:
            m = re.fullmatch(r"\s*-\s*" + _SALVAGE_ID + r"\s*", item)
            if m is None:
                break
            items.append(m.group(1))
        return items
    return []


def _text_or_none(value: Any) -> str | None:
    """A text field of the metadata; anything else (a list, a mapping: a malformed card) counts as absent."""
    return value if isinstance(value, str) and value else None


def _as_list(value: Any) -> list:
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if v is not None]
    return [value]


def _model_index_entries(model_index: Any) -> list[EvalEntry]:
    entries: list[EvalEntry] = []
    for model in _as_list(model_index):
        if not isinstance(model, dict):
            continue
        for result in _as_list(model.get("results")):
            if not isinstance(result, dict):
                continue
            task = result.get("task") if isinstance(result.get("task"), dict) else {}
            dataset = result.get("dataset") if isinstance(result.get("dataset"), dict) else {}
            names = [str(x) for x in (dataset.get("name"), dataset.get("type"), task.get("name"), task.get("type"))
                     if x]
            name = names[0] if names else "unnamed"
            metrics = [m for m in _as_list(result.get("metrics")) if isinstance(m, dict)] or [{}]
            for metric in metrics:
                entries.append(EvalEntry(
                    name=name,
                    value=_to_float(metric.get("value")),
                    source="model-index",
                    benchmarks=frozenset(benchmarks_in(" ".join(names))),
                ))
    return entries


def _text_entries(text: str) -> list[EvalEntry]:
    """Evaluation lines in markdown text (see the module docstring for the rule)."""
    entries: list[EvalEntry] = []
    header: list[str] | None = None      # cells of the current table's header row
    header_done = False                  # benchmark-named header columns already recorded for this table
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(re.fullmatch(r":?-{2,}:?", c) for c in cells if c):
                continue                                  # the |---|---| separator
            if header is None:
                header, header_done = cells, False
                continue
            numbers = [c for c in cells[1:] if _NUMBER.fullmatch(c.replace("**", "").strip())]
            if not numbers:
                continue
            if not header_done:                          # | Model | GSM8K | MMLU |: benchmarks as columns
                entries.extend(EvalEntry(c, None, "text", frozenset(benchmarks_in(c)))
                               for c in header[1:] if benchmarks_in(c))
                header_done = True
            named = benchmarks_in(cells[0])
            if named or _SCORE_HEADER.search(" ".join(header)):
                entries.append(EvalEntry(cells[0] or "unnamed", _to_float(numbers[0]), "text", frozenset(named)))
            continue
        header = None
        key, sep, rest = line.lstrip("-*+ ").partition(":")
        number = _NUMBER.search(rest) if sep else None
        if number and len(key) <= 60:
            named = benchmarks_in(key)
            if named:
                entries.append(EvalEntry(key.strip("* "), _to_float(number.group()), "text", frozenset(named)))
    return entries


def _to_float(value: Any) -> float | None:
    try:
        return float(str(value).replace("%", "").replace("*", "").strip())
    except (TypeError, ValueError):
        return None
