"""Tokens: how prompts are counted, and the text a completion is made of.

The tokenizer is deliberately simple and documented (docs/sim.md), so that usage figures are
deterministic and easy to predict: a token is a run of word characters (`\\w+`: letters, digits,
underscore, in any script) or a single character that is neither a word character nor
whitespace (punctuation, symbols). "Hello, world!" is 4 tokens.

A completion is a list of pieces, one per token, that join into the message text: words after
the first carry their leading space, punctuation carries none. So the text's own token count is
the number of pieces, and the streamed chunks concatenate to the non-streamed message.
"""

from __future__ import annotations

import random
import re

from budapp.sim.config import TextSource

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")

# Neutral filler; any list of plain words would do. Kept short so the generator stays fast.
_VOCABULARY_TEXT = (
    "the model answers every request with words drawn from a fixed list so that demos tests and "
    "load tests behave like a real endpoint without any accelerator it streams tokens at a "
    "configured pace reports usage and fails on purpose when asked to system platform cluster "
    "gateway latency token stream budget project value signal river mountain garden window "
    "paper light quiet bright simple careful steady early later often always never perhaps "
    "between around across under over through after before while since until during within "
    "small large green blue warm cold open clear known fair kind plain rapid gentle honest"
)
VOCABULARY = tuple(_VOCABULARY_TEXT.split())


def count_tokens(text: str) -> int:
    return len(TOKEN_PATTERN.findall(text))


def split_tokens(text: str) -> list[str]:
    return TOKEN_PATTERN.findall(text)


def is_word(token: str) -> bool:
    return token[0].isalnum() or token[0] == "_"


def generate_words(rng: random.Random, count: int) -> list[str]:
    """Sentences of 6 to 14 words, each closed by a full stop (which is a token too)."""
    pieces: list[str] = []
    vocabulary = VOCABULARY
    size = len(vocabulary)
    sentence_left = 0
    draw = rng.random
    for position in range(count):
        if sentence_left == 0 and pieces and pieces[-1] != ".":
            pieces.append(".")
            continue
        word = vocabulary[int(draw() * size)]
        if sentence_left == 0:
            sentence_left = 6 + int(draw() * 9)
            word = word.capitalize()
        sentence_left -= 1
        pieces.append(word if position == 0 else " " + word)
    return pieces


def echo_tokens(prompt_tokens: list[str], count: int) -> list[str]:
    """The prompt's tokens, cycled to `count`, joined back with spaces between words."""
    pieces: list[str] = []
    total = len(prompt_tokens)
    for position in range(count):
        token = prompt_tokens[position % total]
        pieces.append(token if position == 0 or not is_word(token) else " " + token)
    return pieces


def generate(source: TextSource, rng: random.Random, count: int, prompt_text: str) -> list[str]:
    if source is TextSource.ECHO:
        tokens = split_tokens(prompt_text)
        if tokens:
            return echo_tokens(tokens, count)
    return generate_words(rng, count)
