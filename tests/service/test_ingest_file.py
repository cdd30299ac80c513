"""``service.events.ingest_file``: a JSONL stream read in chunks into a real store, with where each
event came from, and the collector's thresholds given back however the ingestion ends."""

import gc
import io

import orjson

from gpubill.service.events import Store, ingest_file
from gpubill.store.collector import RARE_GEN0

TS = 1_735_689_600


def line(txn, **props):
    return orjson.dumps({"transaction_id": txn, "external_subscription_id": "s1", "code": "gpu_job",
                         "timestamp": TS, "properties": props})


def test_chunks_keep_line_numbers_past_blank_and_malformed_lines(tmp_path):
    data = b"\n".join([line("a", gpu_count=1), b"", b"  ", line("b", gpu_count=2), b"{not json",
                       line("c", gpu_count=-1), line("d")]) + b"\n"
    with Store(tmp_path / "s.db") as store:
        got = list(ingest_file(store, io.BufferedReader(io.BytesIO(data)), "jsonl", 2, "cli:t"))
    assert [where for _, where in got] == [[1, 4], [5, 6], [7]]
    statuses = [r.status for rec, _ in got for r in rec.results()]
    assert statuses == ["ingested", "ingested", "rejected", "rejected", "ingested"]


def test_the_collector_runs_rarely_during_an_ingestion_and_as_before_after_it(tmp_path):
    before = gc.get_threshold()
    data = b"\n".join(line(f"t{i}") for i in range(5)) + b"\n"
    with Store(tmp_path / "s.db") as store:
        seen = [gc.get_threshold()[0] for _ in ingest_file(store, io.BytesIO(data), "jsonl", 2, "cli:t")]
        assert seen == [max(before[0], RARE_GEN0)] * 3
        assert gc.get_threshold() == before
        stopped = ingest_file(store, io.BytesIO(data), "jsonl", 2, "cli:t")
        next(stopped)
        stopped.close()  # a consumer that stops early (an error in the CLI's loop)
        assert gc.get_threshold() == before


def test_overlapping_ingestions_give_the_thresholds_back_once_the_last_ends(tmp_path):
    before = gc.get_threshold()
    data = b"\n".join(line(f"t{i}") for i in range(4)) + b"\n"
    with Store(tmp_path / "a.db") as a, Store(tmp_path / "b.db") as b:
        first = ingest_file(a, io.BytesIO(data), "jsonl", 2, "cli:a")
        second = ingest_file(b, io.BytesIO(data), "jsonl", 2, "cli:b")
        next(first)
        next(second)
        first.close()  # ends first: the other still runs with rare collections
        assert gc.get_threshold()[0] == max(before[0], RARE_GEN0)
        assert len(list(second)) == 1
        assert gc.get_threshold() == before
