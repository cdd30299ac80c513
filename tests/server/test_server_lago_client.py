"""The official lago-python-client, unchanged, against a real `gpubill serve`."""

import pytest
from lago_python_client.client import Client
from lago_python_client.exceptions import LagoApiError
from lago_python_client.models.event import BatchEvent, Event


def lago(srv, key):
    return Client(api_key=key, api_url=srv.url + "/")


def test_create_batch_and_find(served):
    srv, writer, reader = served
    c = lago(srv, writer)
    got = c.events.create(Event(transaction_id="lc-1", external_subscription_id="sub_lc", code="gpu_job",
                                timestamp=1735689600, properties={"gpu_type": "H100-SXM", "gpu_count": 8}))
    assert got is not None and got.transaction_id == "lc-1"
    assert got.timestamp == "2025-01-01T00:00:00.000Z"
    c.events.batch_create(BatchEvent(events=[
        Event(transaction_id=f"lc-b{i}", external_subscription_id="sub_lc", code="tokens",
              timestamp="1735689600.250", precise_total_amount_cents="1.5", properties={"input_tokens": i})
        for i in range(3)]))
    found = lago(srv, reader).events.find("lc-b2")
    assert found.code == "tokens" and found.properties == {"input_tokens": 2}
    assert found.timestamp == "2025-01-01T00:00:00.250Z" and found.precise_total_amount_cents == "1.5"


def test_errors_surface_as_lago_api_errors(served):
    srv, writer, reader = served
    with pytest.raises(LagoApiError) as e:
        lago(srv, reader).events.create(Event(transaction_id="lc-x", external_subscription_id="s",
                                              code="c", timestamp=1735689600, properties={}))
    assert e.value.status_code == 403
    with pytest.raises(LagoApiError) as e:
        lago(srv, writer).events.batch_create(BatchEvent(events=[
            Event(transaction_id="lc-y", external_subscription_id="s", code="c",
                  timestamp="2025-01-01 12:00:00", properties={})]))
    assert e.value.status_code == 422
    with pytest.raises(LagoApiError) as e:
        lago(srv, reader).events.find("lc-missing")
    assert e.value.status_code == 404
