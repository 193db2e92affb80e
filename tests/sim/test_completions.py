from __future__ import annotations

from budapp.sim.text import count_tokens
from tests.sim.conftest import RunningSim


def test_completion_has_openais_shape_and_usage(sim: RunningSim) -> None:
    reply = sim.client().completions.create(model="m", prompt="Say: hi there.", max_tokens=7)

    assert reply.id.startswith("cmpl-")
    assert reply.object == "text_completion"
    assert reply.model == "m"
    [choice] = reply.choices
    assert choice.index == 0
    assert choice.finish_reason == "length"
    assert count_tokens(choice.text) == 7
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 7)
    assert reply.usage.total_tokens == 12


def test_completion_of_several_prompts_answers_each(sim: RunningSim) -> None:
    reply = sim.client().completions.create(model="m", prompt=["a b", "c"], max_tokens=2, n=2)
    assert [choice.index for choice in reply.choices] == [0, 1, 2, 3]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == 3
    assert reply.usage.completion_tokens == 8


def test_completion_of_token_ids_counts_the_ids(sim: RunningSim) -> None:
    client = sim.client()
    single = client.completions.create(model="m", prompt=[1, 2, 3, 4], max_tokens=1)
    assert single.usage is not None
    assert single.usage.prompt_tokens == 4
    batch = client.completions.create(model="m", prompt=[[1, 2], [3]], max_tokens=1)
    assert batch.usage is not None
    assert batch.usage.prompt_tokens == 3
    assert len(batch.choices) == 2


def test_completion_stream_chunks_usage_and_done(sim: RunningSim) -> None:
    stream = sim.client().completions.create(
        model="m",
        prompt="Once upon a time",
        stream=True,
        max_tokens=5,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert all(chunk.object == "text_completion" for chunk in chunks)
    assert len({chunk.id for chunk in chunks}) == 1
    text = "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)
    assert count_tokens(text) == 5
    assert chunks[-2].choices[0].finish_reason == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 4
    assert chunks[-1].usage.completion_tokens == 5


def test_completion_stream_raw_ends_with_done(sim: RunningSim) -> None:
    body = {"model": "m", "prompt": "x", "stream": True, "max_tokens": 2}
    with sim.http() as http:
        response = http.post("/v1/completions", json=body)
    assert response.text.endswith("data: [DONE]\n\n")
    assert response.text.count("data: ") == 2 + 1 + 1  # tokens, finish, [DONE]
