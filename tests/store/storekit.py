"""Helpers shared by the store tests."""


def ev(txn="t1", sub="sub_1", code="gpu_job", ts=1_735_689_600, **props):
    return {"transaction_id": txn, "external_subscription_id": sub, "code": code,
            "timestamp": ts, "properties": props}
