from __future__ import annotations

import openai

from budapp.sim.text import split_tokens
from tests.sim.conftest import SimFactory

MESSAGES = [{"role": "user", "content": "Tell me a story."}]


def chat_text(client: openai.OpenAI, **kwargs: object) -> str:
    reply = client.chat.completions.create(model="m", messages=MESSAGES, **kwargs)  # type: ignore[call-overload]
    content: str = reply.choices[0].message.content
    return content


def streamed_text(client: openai.OpenAI, **kwargs: object) -> str:
    stream = client.chat.completions.create(  # type: ignore[call-overload]
        model="m", messages=MESSAGES, stream=True, **kwargs
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def test_a_seed_makes_answers_reproducible(start_sim: SimFactory) -> None:
    first = start_sim(seed=7, output_tokens_min=5, output_tokens_max=30).client()
    second = start_sim(seed=7, output_tokens_min=5, output_tokens_max=30).client()
    other = start_sim(seed=8, output_tokens_min=5, output_tokens_max=30).client()

    answer = chat_text(first)
    assert chat_text(first) == answer  # the same request, the same answer
    assert chat_text(second) == answer  # on another server with the same seed
    assert streamed_text(second) == answer  # streamed or not
    assert chat_text(other) != answer


def test_a_smaller_max_tokens_gives_a_prefix(start_sim: SimFactory) -> None:
    client = start_sim(seed=1, output_tokens_min=20, output_tokens_max=20).client()
    full = split_tokens(chat_text(client))
    assert split_tokens(chat_text(client, max_tokens=6)) == full[:6]


def test_the_requests_seed_overrides_the_servers(start_sim: SimFactory) -> None:
    unseeded = start_sim().client()
    seeded = start_sim(seed=123).client()
    assert chat_text(unseeded, seed=5) == chat_text(unseeded, seed=5) == chat_text(seeded, seed=5)
    assert chat_text(seeded, seed=6) != chat_text(seeded, seed=5)


def test_without_a_seed_answers_vary(start_sim: SimFactory) -> None:
    client = start_sim().client()
    assert len({chat_text(client) for _ in range(5)}) > 1


def test_seeded_failures_repeat_the_same_sequence(start_sim: SimFactory) -> None:
    def outcomes(seed: int) -> list[int]:
        running = start_sim(seed=seed, failure_rate=0.5)
        with running.http() as http:
            return [
                http.post("/v1/completions", json={"model": "m", "prompt": "x"}).status_code
                for _ in range(24)
            ]

    sequence = outcomes(3)
    assert set(sequence) == {200, 500}
    assert outcomes(3) == sequence


def test_echo_repeats_the_prompt(start_sim: SimFactory) -> None:
    client = start_sim(text_source="echo").client()
    reply = client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "ignored"},
            {"role": "user", "content": "Ping, pong!"},
        ],
        max_tokens=6,
    )
    assert reply.choices[0].message.content == "Ping, pong! Ping,"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 6
