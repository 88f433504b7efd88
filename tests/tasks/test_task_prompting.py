"""Prompt variants on tiny real tokenizers with hand-written chat templates (no hub downloads)."""
from __future__ import annotations

import pytest
from transformers import GenerationConfig

from chat_templates import (DROPPING_TEMPLATE, GEMMA_TEMPLATE, LLAMA_TEMPLATE, QWEN_DEFAULT_SYSTEM, QWEN_TEMPLATE,
                      STUBBORN_TEMPLATE)
from raygems.tasks import PROMPT_VARIANTS
from raygems.tasks.prompting import (fallback_prompt, model_system_prompt, render_prompt, render_variant,
                                     template_default_system_prompt)

MESSAGES = [{"role": "user", "content": "What is 6 * 7? End with #### N."}]


@pytest.fixture
def qwen(make_tokenizer):
    return make_tokenizer(QWEN_TEMPLATE, eos_token="<|im_end|>")


@pytest.fixture
def gemma(make_tokenizer):
    return make_tokenizer(GEMMA_TEMPLATE, bos_token="<bos>")


@pytest.fixture
def llama(make_tokenizer):
    return make_tokenizer(LLAMA_TEMPLATE, bos_token="<|begin_of_text|>")


def test_variant_names():
    assert PROMPT_VARIANTS == ("system", "plain")


def test_qwen_style_default_system_prompt_is_found(qwen):
    assert template_default_system_prompt(qwen) == QWEN_DEFAULT_SYSTEM
    assert model_system_prompt(qwen) == QWEN_DEFAULT_SYSTEM


def test_qwen_style_variants(qwen):
    with_system = render_variant(qwen, MESSAGES, "system")
    assert with_system == (f"<|im_start|>system\n{QWEN_DEFAULT_SYSTEM}<|im_end|>\n"
                           f"<|im_start|>user\n{MESSAGES[0]['content']}<|im_end|>\n<|im_start|>assistant\n")
    plain = render_variant(qwen, MESSAGES, "plain")
    assert QWEN_DEFAULT_SYSTEM not in plain
    assert plain.endswith(f"<|im_start|>user\n{MESSAGES[0]['content']}<|im_end|>\n<|im_start|>assistant\n")
    assert render_prompt(qwen, MESSAGES, None) == plain


def test_explicit_system_prompt_replaces_the_default(qwen):
    text = render_prompt(qwen, MESSAGES, "Be brief.")
    assert "<|im_start|>system\nBe brief.<|im_end|>" in text and QWEN_DEFAULT_SYSTEM not in text


def test_gemma_style_template_rejects_system_so_it_is_folded(gemma):
    assert model_system_prompt(gemma) is None
    text = render_prompt(gemma, MESSAGES, "Be brief.")
    assert text == (f"<bos><start_of_turn>user\nBe brief.\n\n{MESSAGES[0]['content']}<end_of_turn>\n"
                    "<start_of_turn>model\n")
    assert render_prompt(gemma, MESSAGES, None) == (
        f"<bos><start_of_turn>user\n{MESSAGES[0]['content']}<end_of_turn>\n<start_of_turn>model\n")
    # With no own system prompt, both variants give the same prompt.
    assert render_variant(gemma, MESSAGES, "system") == render_variant(gemma, MESSAGES, "plain")


def test_gemma_style_with_a_system_prompt_from_generation_config(gemma):
    config = GenerationConfig()
    config.system_prompt = "You are a careful assistant."
    assert model_system_prompt(gemma, config) == "You are a careful assistant."
    text = render_variant(gemma, MESSAGES, "system", generation_config=config)
    assert "<start_of_turn>user\nYou are a careful assistant.\n\nWhat is 6 * 7?" in text
    assert "careful" not in render_variant(gemma, MESSAGES, "plain", generation_config=config)
    assert model_system_prompt(gemma, {"default_system_prompt": "From a dict."}) == "From a dict."


def test_llama_style_date_header_is_not_a_system_prompt(llama):
    assert model_system_prompt(llama) is None
    plain = render_prompt(llama, MESSAGES, None)
    assert plain.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    with_system = render_prompt(llama, MESSAGES, "Be brief.")
    assert "Today Date: 26 Jul 2024\n\nBe brief.<|eot_id|>" in with_system


def test_template_that_drops_system_turns_gets_it_folded(make_tokenizer):
    tokenizer = make_tokenizer(DROPPING_TEMPLATE)
    text = render_prompt(tokenizer, MESSAGES, "Be brief.")
    assert text == f"<user>Be brief.\n\n{MESSAGES[0]['content']}</user>\n<assistant>"


def test_template_that_injects_its_default_even_for_an_empty_system_turn(make_tokenizer):
    tokenizer = make_tokenizer(STUBBORN_TEMPLATE)
    assert model_system_prompt(tokenizer) == "Default helper prompt."
    plain = render_prompt(tokenizer, MESSAGES, None)
    assert "Default helper prompt." not in plain and plain.endswith("[assistant]")
    quoting = [{"role": "user", "content": 'Quote: "Default helper prompt." Who says it?'}]
    plain = render_prompt(tokenizer, quoting, None)          # the injected default goes, the quoted one stays
    assert plain.count("Default helper prompt.") == 1 and 'Quote: "Default helper prompt."' in plain


def test_tokenizer_without_chat_template_gets_the_fallback_format(make_tokenizer):
    tokenizer = make_tokenizer(None)
    assert model_system_prompt(tokenizer) is None
    assert render_prompt(tokenizer, MESSAGES, None) == f"User: {MESSAGES[0]['content']}\n\nAssistant:"
    assert render_prompt(tokenizer, MESSAGES, "Be brief.") == (
        f"System: Be brief.\n\nUser: {MESSAGES[0]['content']}\n\nAssistant:")
    assert fallback_prompt(MESSAGES, None) == render_prompt(tokenizer, MESSAGES, None)


def test_real_task_queries_render(qwen, benchmarks_dir):
    from raygems.tasks import get_task

    query = get_task("arc_challenge", data_dir=benchmarks_dir).load()[0]
    for variant in PROMPT_VARIANTS:
        text = render_variant(qwen, query["messages"], variant)
        assert query["messages"][0]["content"] in text and text.endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("messages,match", [
    ([{"role": "system", "content": "x"}, *MESSAGES], "system turn"),
    ([], "start with a user turn"),
    ([{"content": "no role"}], "role"),
])
def test_bad_messages_are_refused(qwen, messages, match):
    with pytest.raises(ValueError, match=match):
        render_prompt(qwen, messages, None)


def test_unknown_variant(qwen):
    with pytest.raises(ValueError, match="unknown prompt variant"):
        render_variant(qwen, MESSAGES, "with-system")
