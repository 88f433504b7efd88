"""Model cards: front matter, evaluation results, and the documentation check of the paper's Table 6."""
from __future__ import annotations

import pytest

from raygems.hub.cards import (BENCHMARK_FAMILIES, DOC_IRRELEVANT, DOC_NONE, DOC_RELEVANT, ModelCardError,
                               benchmark_family, benchmarks_in, normalise_task, parse_model_card, salvage_base_models)
from raygems.tasks.info import task_info

MODEL_INDEX_CARD = """---
base_model:
- org/base-a
- org/base-b
base_model_relation: merge
pipeline_tag: text-generation
library_name: transformers
tags: [merge, mergekit]
model-index:
- name: m
  results:
  - task: {type: text-generation}
    dataset: {name: MBPP, type: google-research-datasets/mbpp}
    metrics:
    - {type: pass@1, value: 41.5}
  - task: {type: text-generation}
    dataset: {name: HellaSwag (10-Shot), type: hellaswag}
    metrics:
    - {type: acc_norm, value: 80.1}
---
# m
"""


def test_front_matter_fields():
    card = parse_model_card(MODEL_INDEX_CARD, "x/m")
    assert card.model_id == "x/m"
    assert card.base_models == ["org/base-a", "org/base-b"]
    assert card.base_model_relation == "merge"
    assert card.pipeline_tag == "text-generation" and card.library_name == "transformers"
    assert card.tags == ["merge", "mergekit"]
    assert card.text.strip() == "# m"


def test_single_base_model_string_and_missing_front_matter():
    assert parse_model_card("---\nbase_model: a/b\n---\ntext", "c/d").base_models == ["a/b"]
    plain = parse_model_card("# Just text\n\nNo metadata.", "c/d")
    assert plain.metadata == {} and plain.base_models == [] and plain.text.startswith("# Just text")
    assert parse_model_card("---\n- a list\n---\n", "c/d").metadata == {}


def test_broken_yaml_names_the_model_and_the_line():
    with pytest.raises(ModelCardError, match="bad/card: front matter is not valid YAML") as raised:
        parse_model_card("---\nbase_model: a/b\ntags: [unclosed\nlicense: mit\n---\n", "bad/card")
    assert isinstance(raised.value, ValueError) and "\n" not in str(raised.value)
    assert raised.value.reason.endswith("but got ':' on line 4)")   # README lines (the `---` line is line 1)


@pytest.mark.parametrize("front, expected", [
    ("base_model: org/base\ntags: [x", ["org/base"]),
    ("base_model: 'org/base'  # a comment\ntags: [x", ["org/base"]),
    ("tags: [x\nbase_model: [org/a, \"org/b\"", ["org/a", "org/b"]),
    ("base_model:\n- org/a\n-  org/b\ntags: {x", ["org/a", "org/b"]),
    ("base_model: {id: org/a\n", []),                  # a mapping: no id can be read from it
    ("base_model: not-an-id\ntags: [x", []),
    ("tags: [x", []),
])
def test_base_models_salvaged_from_a_card_that_is_not_yaml(front, expected):
    text = f"---\n{front}\n---\n# card\nbase_model: other/id\n"
    with pytest.raises(ModelCardError):
        parse_model_card(text)
    assert salvage_base_models(text) == expected
    assert salvage_base_models("# no front matter\nbase_model: org/a\n") == []


def test_model_index_results_and_their_families():
    card = parse_model_card(MODEL_INDEX_CARD, "x/m")
    assert card.has_model_index and card.has_eval_results
    assert [(e.name, e.value) for e in card.eval_entries] == [("MBPP", 41.5), ("HellaSwag (10-Shot)", 80.1)]
    assert card.documented_benchmarks == {"mbpp", "hellaswag"}
    assert card.documented_families == {"code", "commonsense"}


@pytest.mark.parametrize("task, expected", [
    ("mbpp", DOC_RELEVANT), ("winogrande", DOC_RELEVANT),     # HellaSwag is a commonsense benchmark too
    ("gsm8k", DOC_IRRELEVANT), ("mmlu", DOC_IRRELEVANT), ("arc-challenge", DOC_IRRELEVANT),
])
def test_documentation_for_tasks(task, expected):
    assert parse_model_card(MODEL_INDEX_CARD).documentation_for(task) == expected


def test_text_tables_count_as_documentation():
    rows_as_benchmarks = "# m\n\n| Benchmark | Score |\n|---|---|\n| GSM8K (8-shot) | 71.3 |\n| MATH | 30.2 |\n"
    card = parse_model_card(rows_as_benchmarks)
    assert not card.has_model_index and card.documented_benchmarks == {"gsm8k", "math"}
    assert card.documentation_for("gsm8k") == DOC_RELEVANT
    assert card.documentation_for("mbpp") == DOC_IRRELEVANT

    columns_as_benchmarks = "| Model | HumanEval | MMLU |\n|---|---|---|\n| ours | 35.0 | 52.1 |\n"
    card = parse_model_card(columns_as_benchmarks)
    assert card.documented_benchmarks == {"humaneval", "mmlu"}
    assert card.documentation_for("mbpp") == DOC_RELEVANT        # a coding score counts for coding
    assert card.documentation_for("mmlu") == DOC_RELEVANT
    assert card.documentation_for("gsm8k") == DOC_IRRELEVANT


def test_unknown_benchmarks_in_a_score_table_are_irrelevant_documentation():
    card = parse_model_card("| Task | Accuracy |\n|---|---|\n| SEA-HELM (th) | 44.9 |\n")
    assert card.has_eval_results and card.documented_benchmarks == set()
    assert card.documentation_for("gsm8k") == DOC_IRRELEVANT


def test_training_details_and_prose_are_not_documentation():
    text = ("# m\nFine-tuned on a math dataset with GSM8K-style questions.\n\n"
            "- learning_rate: 2e-05\n- num_epochs: 3\n\n| Hyper-parameter | Value |\n|---|---|\n| lr | 0.0001 |\n")
    card = parse_model_card(text)
    assert not card.has_eval_results
    assert card.documentation_for("gsm8k") == DOC_NONE


def test_colon_lines_with_benchmark_names():
    card = parse_model_card("## Results\n- **GSM8K**: 62.5%\n- ARC-Challenge: 55.0\n")
    assert card.documented_benchmarks == {"gsm8k", "arc_challenge"}
    assert [e.value for e in card.eval_entries] == [62.5, 55.0]
    assert card.documentation_for("arc_challenge") == DOC_RELEVANT


def test_aggregate_task_needs_every_component_family():
    partial = parse_model_card("| Benchmark | Score |\n|---|---|\n| GSM8K | 60 |\n| MBPP | 40 |\n")
    components = ("gsm8k", "mbpp", "mmlu")
    assert partial.documentation_for("overall", components) == DOC_IRRELEVANT
    assert partial.documentation_for("overall", ("gsm8k", "mbpp")) == DOC_RELEVANT
    router = parse_model_card("- RouterBench: 71.0\n")
    assert router.documentation_for("routerbench", components) == DOC_RELEVANT


def test_benchmark_name_matching():
    assert benchmarks_in("ARC-Easy") == {"arc_easy"}
    assert benchmarks_in("ai2_arc (ARC-Challenge)") == {"arc_challenge"}
    assert benchmarks_in("XCOPA") == set()                  # not COPA: word boundaries matter
    assert benchmarks_in("MMLU-Pro") == {"mmlu"}
    assert normalise_task("ARC-Challenge") == "arc_challenge"


def test_every_benchmark_a_card_may_name_has_one_skill_family_defined_once():
    assert all(benchmark_family(name) for name in BENCHMARK_FAMILIES)
    assert benchmark_family("gsm8k") == task_info("gsm8k").skill_family == "math"      # the task's own
    assert benchmark_family("humaneval") == benchmark_family("livecodebench") == "code"
    for name, (_, family) in BENCHMARK_FAMILIES.items():      # never a second definition of a task's family
        assert family is None or task_info(name).skill_family is None, name
