"""The HTTP interface fixture speaks ClickHouse's protocol: clickhouse-connect over `http://` gets exact rows in
every format it asks for, compressed or not, streamed, with bound parameters, settings, inserts, auth and
ClickHouse's errors. The production session (`ClickHouse`) works over it unchanged."""

from __future__ import annotations

import clickhouse_connect
import httpx
import pyarrow as pa
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from export_pipeline.clickhouse.connection import ClickHouse
from export_pipeline.errors import ClickHouseUnavailable
from export_pipeline_tests.fakes.clickhouse_http import ClickHouseHTTPServer

DB = "http_protocol"


@pytest.fixture(scope="module")
def server(clickhouse_http: ClickHouseHTTPServer) -> ClickHouseHTTPServer:
    with clickhouse_http.engine.session("http protocol setup") as session:
        session.client.command(f"CREATE DATABASE IF NOT EXISTS {DB}")
        session.client.command(f"CREATE OR REPLACE TABLE {DB}.numbers (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
        session.client.command(f"INSERT INTO {DB}.numbers SELECT number, toString(number) FROM numbers(300000)")
    return clickhouse_http


@pytest.mark.parametrize("compress", [False, "lz4", "zstd", "gzip"])
def test_rows_arrow_and_streams_are_exact_with_any_compression(server, compress):
    client = clickhouse_connect.get_client(dsn=server.url(database=DB), compress=compress)
    rows = client.query("SELECT n, s FROM numbers WHERE n < {limit:UInt64} AND s != {skip:String} ORDER BY n",
                        parameters={"limit": 5, "skip": "it's \t\n"}).result_rows
    assert rows == [(n, str(n)) for n in range(5)]
    table = client.query_arrow("SELECT n FROM numbers ORDER BY n")
    assert table.num_rows == 300000 and table.column("n").to_pylist()[-1] == 299999
    with client.query_arrow_stream("SELECT n, s FROM numbers ORDER BY n", settings={"max_block_size": 50000}) as stream:
        batches = list(stream)
    assert len(batches) >= 6
    merged = pa.Table.from_batches(batches)
    assert merged.column("n").to_pylist() == list(range(300000))
    total = 0
    with client.query_column_block_stream("SELECT n FROM numbers", settings={"max_block_size": 50000}) as blocks:
        for block in blocks:
            total += sum(block[0])
    assert total == sum(range(300000))
    client.close()


def test_settings_parameters_and_database_reach_the_engine(server):
    client = clickhouse_connect.get_client(dsn=server.url(database=DB))
    assert client.command("SELECT getSetting('max_threads')", settings={"max_threads": 3}) == 3
    assert client.command("SELECT currentDatabase()") == DB
    assert client.command("SELECT {a:Array(String)}", parameters={"a": ["x'y", "z\\w"]}) == "['x\\'y','z\\\\w']"
    with pytest.raises(DatabaseError) as raised:
        client.query("SELECT n FROM numbers", settings={"max_result_rows": 10, "result_overflow_mode": "throw"})
    assert "TOO_MANY_ROWS_OR_BYTES" in str(raised.value)
    client.close()


@pytest.mark.parametrize("compress", [False, "lz4", "zstd"])
def test_inserts_land_exactly(server, compress):
    client = clickhouse_connect.get_client(dsn=server.url(database=DB), compress=compress)
    table = f"inserted_{compress or 'plain'}"
    client.command(f"CREATE OR REPLACE TABLE {table} (n UInt64, s String) ENGINE = MergeTree ORDER BY n")
    rows = [[n, f"v{n:06}\t'\n" + "x" * 100] for n in range(50_000)]  # several blocks, compressed one by one
    summary = client.insert(table, rows, column_names=["n", "s"])
    assert summary.written_rows == 50_000
    client.insert_arrow(table, pa.table({"n": [5000], "s": ["arrow"]}))
    assert client.query(f"SELECT count(), sum(n), max(s) FROM {table}").result_rows == [
        (50_001, sum(range(50_000)) + 5000, "v049999\t'\n" + "x" * 100)]
    client.close()


def test_errors_are_clickhouse_status_code_header_and_text(server):
    url = f"http://127.0.0.1:{server.port}/"
    auth = (server.credentials.user, server.credentials.password)
    missing = httpx.post(url, params={"database": DB}, content=b"SELECT * FROM nowhere", auth=auth)
    assert missing.status_code == 404
    assert missing.headers["X-ClickHouse-Exception-Code"] == "60"
    assert missing.text.startswith("Code: 60. DB::Exception:") and "UNKNOWN_TABLE" in missing.text
    syntax = httpx.post(url, content=b"SELEC 1", auth=auth)
    assert (syntax.status_code, syntax.headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    denied = httpx.post(url, content=b"SELECT 1", auth=(server.credentials.user, "wrong"))
    assert (denied.status_code, denied.headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    ok = httpx.get(url, params={"query": "SELECT 1 + {x:UInt8}", "param_x": "41"}, auth=auth)
    assert (ok.status_code, ok.text, ok.headers["X-ClickHouse-Format"]) == (200, "42\n", "TabSeparated")
    json_body = httpx.post(url, params={"default_format": "JSONCompact"}, content=b"SELECT 7 AS x", auth=auth)
    assert json_body.json()["data"] == [[7]]
    assert httpx.get(f"{url}ping").text == "Ok.\n"


def test_a_failure_mid_stream_reaches_the_client(server):
    client = clickhouse_connect.get_client(dsn=server.url(database=DB), compress=False)
    with pytest.raises(Exception) as raised:  # noqa: B017 - the driver reports a truncated stream in several types
        with client.query_column_block_stream("SELECT throwIf(n = 250000) FROM numbers ORDER BY n",
                                              settings={"max_block_size": 10000}) as blocks:
            for _ in blocks:
                pass
    assert "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO" in str(raised.value) or "395" in str(raised.value)
    client.close()


def test_the_production_session_works_over_http(server, tmp_path):
    remote = ClickHouse(server.url(database=DB), lock_dir=tmp_path)
    assert not remote.is_embedded and remote.cluster_name == f"127.0.0.1:{server.port}"
    with remote.session("test") as session:
        assert session.client.command("SELECT count() FROM numbers") == 300000
        session.checkpoint()  # a no-op over HTTP
    wrong = ClickHouse(server.url(password="nope"), lock_dir=tmp_path)
    with pytest.raises(ClickHouseUnavailable) as raised, wrong.session("test") as session:
        session.client  # noqa: B018
    assert "nope" not in raised.value.message and "AUTHENTICATION_FAILED" in raised.value.message
