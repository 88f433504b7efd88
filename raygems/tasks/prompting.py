"""Turning a query's messages into one model's prompt, in the paper's two variants.

The paper evaluates every model with and without its own system prompt and keeps, per task, the
better variant (Appendix C). The variants are named:

* ``"system"``: the model's own default system prompt (``model_system_prompt``) as the system turn;
* ``"plain"``: no system prompt at all, not even one the chat template would inject by itself.

``render_prompt`` applies the model's chat template with the generation prompt appended. Two cases
need care:

* templates that inject a default system prompt when the conversation has none (Qwen2.5: "You are
  Qwen, created by Alibaba Cloud. You are a helpful assistant."): for ``"plain"`` the conversation gets
  an empty system turn, which such templates render instead of their default (should the default still
  appear, its text is cut out of the rendered prompt);
* templates that reject a system turn (Gemma raises "System role not supported") or silently drop it:
  the system prompt is folded into the first user turn as ``"{system}\\n\\n{user}"``.

A tokenizer without a chat template gets the fallback format::

    System: {system prompt}        (only with a system prompt)

    User: {user turn}

    Assistant:
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

PROMPT_VARIANTS = ("system", "plain")

_SYSTEM_PROBE = "\x00raygems-system-probe\x00"
_USER_PROBE = "\x00raygems-user-probe\x00"
_GENERATION_CONFIG_KEYS = ("system_prompt", "default_system_prompt", "system_message")


def _template_errors() -> tuple[type[BaseException], ...]:
    try:
        from jinja2.exceptions import TemplateError
    except ImportError:  # pragma: no cover - jinja2 comes with transformers' chat templates
        return (ValueError,)
    return (TemplateError, ValueError)


def _has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _apply(tokenizer: Any, messages: list[dict], add_generation_prompt: bool) -> str:
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    if not isinstance(text, str):  # some versions return a list for a batch of one
        text = text[0]
    return text


def template_default_system_prompt(tokenizer: Any) -> str | None:
    """The system prompt a chat template injects when the conversation has none, or None.

    Renders a probe conversation with and without a probe system turn: when the template injects a
    default, the render without one equals the render with one, with the default in the probe's place.
    """
    if not _has_chat_template(tokenizer):
        return None
    user = [{"role": "user", "content": _USER_PROBE}]
    try:
        with_system = _apply(tokenizer, [{"role": "system", "content": _SYSTEM_PROBE}] + user, False)
        without_system = _apply(tokenizer, user, False)
    except _template_errors():
        return None
    if with_system.count(_SYSTEM_PROBE) != 1:
        return None
    prefix, suffix = with_system.split(_SYSTEM_PROBE)
    if (len(without_system) > len(prefix) + len(suffix) and without_system.startswith(prefix)
            and without_system.endswith(suffix)):
        injected = without_system[len(prefix): len(without_system) - len(suffix)].strip()
        return injected or None
    return None


def model_system_prompt(tokenizer: Any, generation_config: Any = None) -> str | None:
    """The model's own system prompt, or None when it has none.

    Looked up, in order: ``generation_config`` (a GenerationConfig, a model config or a dict) under
    ``system_prompt``/``default_system_prompt``/``system_message``; the same attributes on the
    tokenizer; the default that the chat template injects (``template_default_system_prompt``).
    """
    for source in (generation_config, tokenizer):
        if source is None:
            continue
        for key in _GENERATION_CONFIG_KEYS:
            value = source.get(key) if isinstance(source, Mapping) else getattr(source, key, None)
            if isinstance(value, str) and value.strip():
                return value
    return template_default_system_prompt(tokenizer)


def _check_messages(messages: Sequence[Mapping]) -> list[dict]:
    checked = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ValueError(f"message {i} must be a mapping with 'role' and 'content', got {message!r}")
        if message["role"] == "system":
            raise ValueError("query messages must not contain a system turn; pass system_prompt instead")
        checked.append({"role": str(message["role"]), "content": str(message["content"])})
    if not checked or checked[0]["role"] != "user":
        raise ValueError("query messages must start with a user turn")
    return checked


def fold_system_prompt(messages: list[dict], system_prompt: str) -> list[dict]:
    """The messages with ``system_prompt`` prepended to the first user turn."""
    folded = [dict(m) for m in messages]
    folded[0]["content"] = f"{system_prompt}\n\n{folded[0]['content']}"
    return folded


def fallback_prompt(messages: list[dict], system_prompt: str | None) -> str:
    """The prompt format for a tokenizer without a chat template (see the module docstring)."""
    parts = [f"System: {system_prompt}"] if system_prompt else []
    for message in messages:
        speaker = "User" if message["role"] == "user" else "Assistant"
        parts.append(f"{speaker}: {message['content']}")
    return "\n\n".join(parts) + "\n\nAssistant:"


def render_prompt(tokenizer: Any, messages: Sequence[Mapping], system_prompt: str | None) -> str:
    """The model's prompt for ``messages`` (user/assistant turns, no system turn), ending with the
    generation prompt. ``system_prompt``: the system turn's text (variant ``"system"``), or None for
    none at all (variant ``"plain"``; a default the template would inject is suppressed)."""
    messages = _check_messages(messages)
    if system_prompt is not None and not str(system_prompt).strip():
        system_prompt = None
    if not _has_chat_template(tokenizer):
        return fallback_prompt(messages, system_prompt)
    errors = _template_errors()
    if system_prompt is None:
        default = template_default_system_prompt(tokenizer)
        if default is None:
            return _apply(tokenizer, messages, True)
        try:
            text = _apply(tokenizer, [{"role": "system", "content": ""}] + messages, True)
        except errors:
            text = _apply(tokenizer, messages, True)
        # A template that treats an empty system turn as none still injects its default: cut it out, but
        # only from before the first user turn (the question itself may quote the same sentence).
        at = text.find(default)
        first_user = next((str(m["content"]) for m in messages if m["role"] == "user"), "")
        user_at = text.find(first_user) if first_user else -1
        if at != -1 and (user_at == -1 or at < user_at):
            text = text[:at] + text[at + len(default):]
        return text
    try:
        text = _apply(tokenizer, [{"role": "system", "content": system_prompt}] + messages, True)
        if system_prompt in text:
            return text
    except errors:
        pass
    # The template rejects (raises) or drops the system turn: fold it into the first user turn.
    return _apply(tokenizer, fold_system_prompt(messages, system_prompt), True)


def render_variant(tokenizer: Any, messages: Sequence[Mapping], variant: str,
                   generation_config: Any = None) -> str:
    """``render_prompt`` for a named variant: ``"system"`` uses ``model_system_prompt`` (a model with
    none renders like ``"plain"``), ``"plain"`` uses none."""
    if variant not in PROMPT_VARIANTS:
        raise ValueError(f"unknown prompt variant {variant!r}; expected one of {PROMPT_VARIANTS}")
    system_prompt = model_system_prompt(tokenizer, generation_config) if variant == "system" else None
    return render_prompt(tokenizer, messages, system_prompt)
