from __future__ import annotations

import logging
import threading
import time

import httpx
import openai
import pytest

from tests.sim.conftest import RunningSim, SimFactory

MESSAGES = [{"role": "user", "content": "hi"}]


def assert_openai_error(response: httpx.Response, status: int, type_: str) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, object] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == type_
    assert isinstance(error["message"], str)
    assert error["message"]
    return error


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": ["x"]}', "messages.[0]"),
        (b'{"model": "m", "messages": [{"role": "user", "content": 5}]}', "messages.[0].content"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}', "n"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}',
         "max_tokens"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
         "stream"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], '
         b'"stream_options": {"include_usage": true}}', "stream_options"),
    ],
)  # fmt: skip
def test_malformed_chat_bodies_are_400(sim: RunningSim, body: bytes, param: str | None) -> None:
    with sim.http() as http:
        response = http.post("/v1/chat/completions", content=body)
    error = assert_openai_error(response, 400, "invalid_request_error")
    assert error["param"] == param


def test_malformed_completion_prompt_is_400(sim: RunningSim) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sim.client().completions.create(model="m", prompt=[{"no": 1}])  # type: ignore[list-item]
    assert caught.value.param == "prompt"


def test_too_large_body_is_413(start_sim: SimFactory) -> None:
    running = start_sim(max_request_bytes=2048)
    with running.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x" * 4096}]},
        )
    assert_openai_error(response, 413, "invalid_request_error")


def test_unknown_model_is_404_when_models_are_configured(start_sim: SimFactory) -> None:
    client = start_sim(models=("alpha", "beta")).client()
    assert [model.id for model in client.models.list()] == ["alpha", "beta"]
    assert client.models.retrieve("beta").id == "beta"
    assert client.chat.completions.create(model="alpha", messages=MESSAGES).model == "alpha"

    with pytest.raises(openai.NotFoundError) as chat:
        client.chat.completions.create(model="gamma", messages=MESSAGES)
    assert chat.value.code == "model_not_found"
    assert chat.value.param == "model"
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="gamma", input="x")
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gamma")


def test_any_model_is_accepted_when_none_are_configured(sim: RunningSim) -> None:
    client = sim.client()
    assert [model.id for model in client.models.list()] == ["budapp-sim"]
    assert client.completions.create(model="whatever", prompt="x").model == "whatever"


def test_failure_rate_one_answers_500_in_openais_shape(start_sim: SimFactory) -> None:
    running = start_sim(failure_rate=1.0)
    with pytest.raises(openai.InternalServerError) as caught:
        running.client().chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.status_code == 500
    with running.http() as http:
        response = http.post("/v1/embeddings", json={"model": "m", "input": "x"})
        assert_openai_error(response, 500, "server_error")
        stream = http.post(
            "/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": True}
        )
        assert_openai_error(stream, 500, "server_error")
        assert http.get("/health").status_code == 200


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_abort_mode_cuts_streams_mid_way(start_sim: SimFactory) -> None:
    running = start_sim(failure_rate=1.0, failure_mode="abort", output_tokens_min=8,
                        output_tokens_max=8)  # fmt: skip
    records = Records()
    logging.getLogger("uvicorn.error").addHandler(records)
    received = b""
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with (  # noqa: PT012
        running.http() as http,
        pytest.raises(httpx.RemoteProtocolError),
        http.stream("POST", "/v1/chat/completions", json=body) as response,
    ):
        assert response.status_code == 200
        for part in response.iter_bytes():
            received += part
    assert b'"content":' in received
    assert b"[DONE]" not in received
    assert b'"finish_reason":"stop"' not in received
    # A request that does not stream gets the 500 instead.
    with pytest.raises(openai.InternalServerError):
        running.client().chat.completions.create(model="m", messages=MESSAGES)
    logging.getLogger("uvicorn.error").removeHandler(records)
    # A planned abort is not logged as an error of the application.
    assert not [message for message in records.messages if "Exception" in message]
    assert running.metric("budapp_sim_injected_failures_total", mode="abort") == 1
    assert running.metric("budapp_sim_injected_failures_total", mode="error") == 1
    assert (
        running.metric("budapp_sim_requests_total", route="/v1/chat/completions", status="599") == 1
    )


def test_concurrency_limit_answers_429_with_retry_after(start_sim: SimFactory) -> None:
    running = start_sim(max_concurrency=1, ttft_ms=1500, retry_after_s=3)
    first: dict[str, object] = {}

    def slow_request() -> None:
        reply = running.client().chat.completions.create(model="m", messages=MESSAGES)
        first["usage"] = reply.usage

    thread = threading.Thread(target=slow_request)
    thread.start()
    deadline = time.monotonic() + 10
    while running.app.in_flight < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    with pytest.raises(openai.RateLimitError) as caught:
        running.client().chat.completions.create(model="m", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.code == "rate_limit_exceeded"
    assert_openai_error(caught.value.response, 429, "rate_limit_error")
    thread.join(10)
    assert first["usage"] is not None
    assert (
        running.metric("budapp_sim_requests_total", route="/v1/chat/completions", status="429") == 1
    )
    # Free again once the first request is answered.
    running.client().chat.completions.create(model="m", messages=MESSAGES)


def test_unknown_route_and_wrong_method(sim: RunningSim) -> None:
    with sim.http() as http:
        assert_openai_error(http.get("/v1/nothing"), 404, "invalid_request_error")
        assert_openai_error(http.get("/v1/chat/completions"), 405, "invalid_request_error")
        assert_openai_error(http.post("/v1/models"), 405, "invalid_request_error")
