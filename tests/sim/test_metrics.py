from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.sim.conftest import SimFactory


def test_metrics_count_requests_tokens_and_latency(start_sim: SimFactory) -> None:
    running = start_sim(output_tokens_min=4, output_tokens_max=4)
    client = running.client()
    client.chat.completions.create(model="m", messages=[{"role": "user", "content": "a b c"}])
    list(
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "d"}], stream=True
        )
    )
    client.embeddings.create(model="m", input="e f", encoding_format="float")
    with running.http() as http:
        http.post("/v1/completions", content=b"{")
        response = http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("budapp_sim_requests_total", route="/v1/chat/completions", status="200") == 2
    assert value("budapp_sim_requests_total", route="/v1/embeddings", status="200") == 1
    assert value("budapp_sim_requests_total", route="/v1/completions", status="400") == 1
    assert value("budapp_sim_tokens_total", kind="prompt") == 3 + 1 + 2
    assert value("budapp_sim_tokens_total", kind="completion") == 8
    assert value("budapp_sim_requests_in_flight") == 0
    assert value("budapp_sim_request_duration_seconds_count", route="/v1/chat/completions") == 2
    assert value("budapp_sim_time_to_first_token_seconds_count") == 1
