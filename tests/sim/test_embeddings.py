from __future__ import annotations

import base64
import math
import struct

import openai
import pytest

from tests.sim.conftest import RunningSim, SimFactory


def test_embeddings_are_unit_vectors_of_the_configured_size(sim: RunningSim) -> None:
    reply = sim.client().embeddings.create(
        model="m", input="Hello, world!", encoding_format="float"
    )
    assert reply.object == "list"
    assert reply.model == "m"
    [item] = reply.data
    assert item.object == "embedding"
    assert item.index == 0
    assert len(item.embedding) == 384
    assert math.isclose(math.fsum(v * v for v in item.embedding), 1.0, rel_tol=1e-9)
    assert reply.usage.prompt_tokens == 4
    assert reply.usage.total_tokens == 4


def test_embeddings_are_deterministic_per_input(sim: RunningSim, start_sim: SimFactory) -> None:
    client = sim.client()
    first = client.embeddings.create(model="m", input=["alpha", "beta"], encoding_format="float")
    again = client.embeddings.create(model="m", input="alpha", encoding_format="float")
    other_server = start_sim(seed=99).client()
    elsewhere = other_server.embeddings.create(model="m", input="alpha", encoding_format="float")

    assert [item.index for item in first.data] == [0, 1]
    assert first.data[0].embedding == again.data[0].embedding == elsewhere.data[0].embedding
    assert first.data[0].embedding != first.data[1].embedding


def test_base64_encoding_is_little_endian_float32(sim: RunningSim) -> None:
    client = sim.client()
    floats = client.embeddings.create(model="m", input="vector", encoding_format="float")
    # The openai client asks for base64 by default and decodes it itself.
    decoded_by_client = client.embeddings.create(model="m", input="vector")
    with sim.http() as http:
        raw = http.post(
            "/v1/embeddings", json={"model": "m", "input": "vector", "encoding_format": "base64"}
        ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    ours = struct.unpack(f"<{len(packed) // 4}f", packed)

    expected = floats.data[0].embedding
    assert len(ours) == len(expected)
    assert all(
        math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(ours, expected, strict=True)
    )
    assert decoded_by_client.data[0].embedding == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_dimensions_from_the_request_or_the_configuration(start_sim: SimFactory) -> None:
    client = start_sim(embedding_dimensions=8).client()
    default = client.embeddings.create(model="m", input="x", encoding_format="float")
    asked = client.embeddings.create(model="m", input="x", dimensions=3, encoding_format="float")
    assert len(default.data[0].embedding) == 8
    assert len(asked.data[0].embedding) == 3


def test_token_id_inputs_are_embedded_and_counted(sim: RunningSim) -> None:
    reply = sim.client().embeddings.create(
        model="m", input=[[1, 2, 3], [4]], encoding_format="float"
    )
    assert len(reply.data) == 2
    assert reply.usage.prompt_tokens == 4


def test_bad_embedding_requests_are_400(sim: RunningSim) -> None:
    client = sim.client()
    with pytest.raises(openai.BadRequestError) as empty:
        client.embeddings.create(model="m", input=[])
    assert empty.value.param == "input"
    with sim.http() as http:
        response = http.post(
            "/v1/embeddings", json={"model": "m", "input": "x", "encoding_format": "hex"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "encoding_format"
