"""What each request gets: its choices' tokens and finish reasons, and the delays between them."""

from __future__ import annotations

import random

from budapp.sim.config import SimConfig
from budapp.sim.protocol import GenerationRequest, Prompt
from budapp.sim.responses import Choice
from budapp.sim.text import generate


class Planner:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        # Failures, delays' jitter and (without a seed) the text: one stream of numbers, so a
        # seeded run replays the same sequence for the same order of requests.
        self.rng = random.Random(config.seed)  # noqa: S311 (simulation, not security)

    def choices(self, request: GenerationRequest) -> list[Choice]:
        config = self.config
        low, high = config.output_tokens_min, config.output_tokens_max
        seed = request.seed if request.seed is not None else config.seed
        choices: list[Choice] = []
        for prompt in request.prompts:
            for _ in range(request.n):
                index = len(choices)
                rng = self.rng if seed is None else _seeded(seed, request.model, index, prompt)
                target = low if low == high else low + int(rng.random() * (high - low + 1))
                count, reason = target, "stop"
                if request.max_tokens is not None and (
                    request.ignore_eos or request.max_tokens < target
                ):
                    count, reason = request.max_tokens, "length"
                pieces = generate(config.text_source, rng, count, prompt.text)
                choices.append(Choice(index, pieces, reason))
        return choices

    def fails(self) -> bool:
        rate = self.config.failure_rate
        return bool(rate) and self.rng.random() < rate

    def ttft(self) -> float:
        return self._jittered(self.config.ttft_ms, self.config.ttft_jitter_ms)

    def itl(self) -> float:
        return self._jittered(self.config.itl_ms, self.config.itl_jitter_ms)

    def _jittered(self, base_ms: float, jitter_ms: float) -> float:
        """Seconds, uniform in [base - jitter, base + jitter], never negative."""
        if jitter_ms:
            base_ms += (self.rng.random() * 2 - 1) * jitter_ms
        return max(base_ms, 0.0) / 1000


def _seeded(seed: int, model: str, index: int, prompt: Prompt) -> random.Random:
    # The same seed, model, choice and prompt give the same text, whatever the order of
    # requests, streamed or not; a smaller max_tokens gives a prefix of it.
    key = f"{seed}\x00{model}\x00{index}\x00{prompt.tokens}\x00{prompt.text}"
    return random.Random(key)  # noqa: S311
