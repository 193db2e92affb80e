from __future__ import annotations

import openai
import orjson
import pytest

from budapp.sim.text import count_tokens
from tests.sim.conftest import RunningSim, SimFactory

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Hello, world!"},
]
PROMPT_TOKENS = 4 + 4  # "You are terse." + "Hello, world!"


def test_chat_completion_has_openais_shape_and_usage(sim: RunningSim) -> None:
    reply = sim.client().chat.completions.create(model="any-name", messages=MESSAGES)

    assert reply.id.startswith("chatcmpl-")
    assert reply.object == "chat.completion"
    assert reply.model == "any-name"
    assert reply.created > 0
    [choice] = reply.choices
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.finish_reason == "stop"
    content = choice.message.content
    assert content
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == PROMPT_TOKENS
    assert reply.usage.completion_tokens == 16 == count_tokens(content)
    assert reply.usage.total_tokens == PROMPT_TOKENS + 16


def test_chat_completion_counts_text_content_parts(sim: RunningSim) -> None:
    parts = [{"type": "text", "text": "one two"}, {"type": "text", "text": "three"}]
    reply = sim.client().chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": parts}],  # type: ignore[list-item,misc]
    )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 3


def test_max_tokens_caps_the_answer_with_finish_reason_length(sim: RunningSim) -> None:
    client = sim.client()
    short = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=5)
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None
    assert short.usage.completion_tokens == 5

    newer = client.chat.completions.create(
        model="m", messages=MESSAGES, max_completion_tokens=3, max_tokens=9
    )
    assert newer.usage is not None
    assert newer.usage.completion_tokens == 3

    roomy = client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=500)
    assert roomy.choices[0].finish_reason == "stop"
    assert roomy.usage is not None
    assert roomy.usage.completion_tokens == 16


def test_ignore_eos_produces_exactly_max_tokens(sim: RunningSim) -> None:
    reply = sim.client().chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=40, extra_body={"ignore_eos": True}
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 40
    assert reply.choices[0].finish_reason == "length"


def test_ignore_eos_is_bounded(sim: RunningSim) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sim.client().chat.completions.create(
            model="m", messages=MESSAGES, max_tokens=600_000, n=2, extra_body={"ignore_eos": True}
        )
    assert caught.value.param == "max_tokens"


def test_n_gives_several_choices(sim: RunningSim) -> None:
    reply = sim.client().chat.completions.create(model="m", messages=MESSAGES, n=3, max_tokens=4)
    assert [choice.index for choice in reply.choices] == [0, 1, 2]
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 12
    assert reply.usage.prompt_tokens == PROMPT_TOKENS


def test_output_length_range_is_respected(start_sim: SimFactory) -> None:
    client = start_sim(output_tokens_min=3, output_tokens_max=7).client()
    lengths = set()
    for _ in range(30):
        reply = client.chat.completions.create(model="m", messages=MESSAGES)
        assert reply.usage is not None
        lengths.add(reply.usage.completion_tokens)
    assert lengths <= set(range(3, 8))
    assert len(lengths) > 1


def test_chat_stream_sends_role_content_finish_and_done(sim: RunningSim) -> None:
    stream = sim.client().chat.completions.create(
        model="m", messages=MESSAGES, stream=True, max_tokens=6
    )
    chunks = list(stream)

    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(chunk.usage is None for chunk in chunks)
    content = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert count_tokens(content) == 6
    assert len(chunks) == 1 + 6 + 1  # role, one per token, finish


def test_chat_stream_is_server_sent_events_ending_with_done(sim: RunningSim) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True, "max_tokens": 2}
    with sim.http() as http:
        response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = response.text.split("\n\n")
    assert events[-1] == ""
    assert events[-2] == "data: [DONE]"
    for event in events[:-2]:
        assert event.startswith("data: ")
        chunk = orjson.loads(event[len("data: ") :])
        assert set(chunk) == {"id", "object", "created", "model", "choices"}
        [choice] = chunk["choices"]
        assert set(choice) == {"index", "delta", "logprobs", "finish_reason"}


def test_stream_usage_comes_in_a_last_chunk_when_asked(sim: RunningSim) -> None:
    stream = sim.client().chat.completions.create(
        model="m",
        messages=MESSAGES,
        stream=True,
        max_tokens=4,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == PROMPT_TOKENS
    assert last.usage.completion_tokens == 4
    assert last.usage.total_tokens == PROMPT_TOKENS + 4
    assert all(chunk.usage is None for chunk in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "length"


def test_stream_with_several_choices_finishes_each(sim: RunningSim) -> None:
    chunks = list(
        sim.client().chat.completions.create(
            model="m", messages=MESSAGES, stream=True, n=2, max_tokens=3
        )
    )
    texts = {0: "", 1: ""}
    finished = set()
    for chunk in chunks:
        [choice] = chunk.choices
        texts[choice.index] += choice.delta.content or ""
        if choice.finish_reason:
            finished.add(choice.index)
    assert finished == {0, 1}
    assert [count_tokens(text) for text in texts.values()] == [3, 3]


def test_a_large_prompt_arriving_in_pieces_is_read_whole(sim: RunningSim) -> None:
    words = "word " * 200_000  # 1 MB: uvicorn hands it over in several body messages
    reply = sim.client().chat.completions.create(
        model="m", messages=[{"role": "user", "content": words}], max_tokens=1
    )
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 200_000
