"""The tiny tree's tokenizer: a byte-level BPE trained in a fraction of a second, Qwen style.

Why it is built the way it is:
* transformers' `AutoTokenizer` on a Qwen folder returns `Qwen2Tokenizer`, which re-applies Qwen2's own
  normalizer (NFC) and pre-tokenizer (its split regex, then ByteLevel without regex) whatever
  tokenizer.json says. The BPE is trained with exactly those, so the ids that training used are the ids
  every loader (transformers, vLLM) produces. Qwen2's regex splits digits one by one, which is what
  lets a tiny model learn arithmetic.
* The chat template is Qwen's: `<|im_start|>role ... <|im_end|>` turns, and a default system prompt
  inserted when the conversation has none. So the "system" and "plain" prompt variants of
  `raygems.tasks.prompting` really differ (plain renders an empty system turn).
"""
from __future__ import annotations

from collections.abc import Iterable

#: The model's own default system prompt (inserted by the chat template when none is given).
SYSTEM_PROMPT = "You are a helpful assistant."
END_OF_TEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END)

#: Qwen2's pre-tokenizer regex (as in transformers' Qwen2Tokenizer).
QWEN2_SPLIT_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
                     r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")

CHAT_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n" + SYSTEM_PROMPT + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (loop.first and message['role'] == 'system') %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def chat_text(user: str, assistant: str = "", system: str | None = SYSTEM_PROMPT) -> str:
    """A conversation as the chat template writes it (used only as tokenizer training text)."""
    head = f"{IM_START}system\n{system}{IM_END}\n" if system is not None else ""
    return f"{head}{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n{assistant}{IM_END}\n"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A `Qwen2Tokenizer` (transformers) with a BPE of `vocab_size` tokens trained on `texts`, the Qwen
    special tokens and the chat template. End of turn `<|im_end|>` is the eos token; padding uses
    `<|endoftext|>`."""
    import json

    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    if vocab_size < 300:
        raise ValueError(f"vocab_size must be >= 300 (256 bytes + merges), got {vocab_size}")
    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(texts, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    tokenizer = Qwen2Tokenizer(vocab=model["vocab"], merges=merges, eos_token=IM_END, pad_token=END_OF_TEXT,
                               unk_token=None, additional_special_tokens=[IM_START, IM_END])
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = 256
    return tokenizer
