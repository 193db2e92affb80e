"""The prompts of a run and the body of each request. Request number `i` of a run always gets
the same prompt and output length for the same seed, whatever the concurrency and in every
stage, so that stages and runs compare like with like."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

from budapp.benchmarks.config import BenchmarkConfig, SyntheticPrompts, TokenLengths

# Common short English words: each is one token for budapp-sim's tokenizer and, with its
# leading space, a single token for the usual BPE vocabularies (GPT, Llama, Mistral).
_VOCABULARY = (
    "the of and to in is was he for it with as his on be at by had not are but from or have"
    " an they which one you were her all she there would their we him been has when who will"
    " more no if out so said what up its about into than them can only other new some could"
    " time these two may then do first any my now such like our over man me even most made"
    " after also did many before must through back years where much your way well down should"
    " because each just those people how too little state good very make world still own see"
    " men work long get here between both life being under never day same another know while"
    " last might us great old year off come since against go came right used take three"
)
_WORDS = _VOCABULARY.split()

# The fallback tokenizer, for servers that report no usage: a run of word characters, or one
# character that is neither a word character nor a space (budapp-sim counts exactly so).
_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@dataclass(frozen=True, slots=True)
class Prompt:
    """One request's input: a chat conversation or a completion prompt, and the output
    length asked for."""

    messages: list[dict[str, Any]] | None
    text: str | None
    output_tokens: int

    def estimated_input_tokens(self) -> int:
        if self.messages is not None:
            return sum(count_tokens(str(m.get("content") or "")) for m in self.messages)
        return count_tokens(self.text or "")


def draw_length(lengths: TokenLengths, rng: random.Random) -> int:
    if lengths.distribution == "fixed":
        value = lengths.value
    elif lengths.distribution == "uniform":
        assert lengths.min is not None  # noqa: S101 - checked by TokenLengths
        assert lengths.max is not None  # noqa: S101
        value = rng.randint(lengths.min, lengths.max)
    else:
        value = round(rng.gauss(lengths.value, lengths.stddev))
    low = lengths.min or 1
    high = lengths.max or math.inf
    return int(max(low, min(value, high)))


class PromptSource:
    """Prompt `i` of the run: synthetic, or row `i` (cycling) of a dataset column."""

    def __init__(self, config: BenchmarkConfig, rows: list[Any] | None = None) -> None:
        self.config = config
        self.rows = rows or []
        if not isinstance(config.prompts, SyntheticPrompts) and not self.rows:
            raise ValueError("dataset prompts need the column's values")

    def prompt(self, sequence: int) -> Prompt:
        rng = random.Random(f"{self.config.seed}:{sequence}")  # noqa: S311 - load, not secrets
        prompts = self.config.prompts
        output = draw_length(prompts.output_tokens, rng)
        if not self.rows and isinstance(prompts, SyntheticPrompts):
            words = draw_length(prompts.input_tokens, rng)
            text = " ".join(rng.choice(_WORDS) for _ in range(words))
            return self._wrap(text, output)
        row = self.rows[sequence % len(self.rows)]
        if isinstance(row, list):
            return Prompt(messages=row, text=None, output_tokens=output)
        return self._wrap(str(row), output)

    def _wrap(self, text: str, output: int) -> Prompt:
        if self.config.api == "chat":
            return Prompt([{"role": "user", "content": text}], None, output)
        return Prompt(None, text, output)

    def body(self, prompt: Prompt, model: str) -> dict[str, Any]:
        """The request body: streamed, usage asked for, the output length fixed."""
        body: dict[str, Any] = {
            "model": model,
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": prompt.output_tokens,
        }
        if self.config.exact_output:
            body["ignore_eos"] = True
        if prompt.messages is not None:
            body["messages"] = prompt.messages
        else:
            body["prompt"] = prompt.text
        return body


def usable_rows(values: list[Any]) -> list[Any]:
    """The values of a dataset column a request can send: non-empty strings, or lists of
    messages with a role and text content."""
    usable: list[Any] = []
    for value in values:
        if isinstance(value, str) and value.strip():
            usable.append(value)
        elif isinstance(value, list) and value and all(_is_message(item) for item in value):
            usable.append([{"role": m["role"], "content": m["content"]} for m in value])
    return usable


def _is_message(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and isinstance(item.get("role"), str)
        and isinstance(item.get("content"), str)
    )
