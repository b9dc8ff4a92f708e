"""Lead lists and results in object storage, against a real S3-compatible server (moto's
standalone server) on 127.0.0.1, over HTTP, with credentials in the environment. No test
touches a real cloud: the instance-metadata lookup is disabled and no profile file is read."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from campaign_builder import campaign_tables, write_campaign
from conftest import KyzoServer
from helpers import free_port, json_logs, lead_rows, run_cli

CREDENTIALS: dict[str, str | None] = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask 169.254.169.254 for credentials
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",  # nor read this machine's profiles
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_ENDPOINT_URL": None,  # unset: [storage] endpoint_url says where the server is
    "AWS_PROFILE": None,
}


def _start_moto(port: int, **env: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={"PATH": "/usr/bin:/bin", **{k: v for k, v in CREDENTIALS.items() if v}, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/moto-api/", timeout=1, trust_env=False)
            return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto server did not start")


class S3:
    """The test's side of the bucket server: boto3 with the same credentials."""

    def __init__(self, endpoint: str) -> None:
        import boto3

        self.endpoint = endpoint
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def bucket(self, name: str) -> None:
        self.client.create_bucket(Bucket=name)

    def put_leads(self, url: str, rows: list[dict[str, str]]) -> None:
        bucket, key = url.removeprefix("s3://").split("/", 1)
        self.client.put_object(Bucket=bucket, Key=key, Body=pl.DataFrame(rows).write_csv().encode())

    def read(self, url: str) -> pl.DataFrame:
        bucket, key = url.removeprefix("s3://").split("/", 1)
        body = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return pl.read_csv(io.BytesIO(body), infer_schema=False)

    def keys(self, bucket: str) -> list[str]:
        return [item["Key"] for item in self.client.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.fixture(scope="module")
def moto() -> Iterator[S3]:
    port = free_port()
    process = _start_moto(port)
    try:
        yield S3(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3(moto: S3, request: pytest.FixtureRequest) -> S3:
    """A bucket of this test's own: 'leads-<n>' (names are global to the server)."""
    moto.bucket(_bucket(request))
    return moto


def _bucket(request: pytest.FixtureRequest) -> str:
    return "b" + str(abs(hash(request.node.nodeid)) % 10**10)


def _config(folder: Path, kyzo: KyzoServer, endpoint: str, leads: str, **output: str) -> Path:
    document = campaign_tables(base_url=kyzo.base_url, leads=leads, folder=folder)
    del document["output"]["errors_path"]  # default: beside the results (in the bucket, for a URL)
    document["output"].update(output)
    document["storage"] = {"endpoint_url": endpoint}
    return write_campaign(folder / "campaign.toml", document)


def _dialer(args: list[str], **env: str | None) -> Any:
    return run_cli(args, env={**CREDENTIALS, **env})


def test_campaign_read_from_a_bucket_writes_its_results_back(
    s3: S3, kyzo: KyzoServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bucket = _bucket(request)
    rows = lead_rows(8)
    rows[2]["phone"] = "12345"  # rejected: the errors file has a row
    s3.put_leads(f"s3://{bucket}/in/leads.csv", rows)
    config = _config(
        tmp_path, kyzo, s3.endpoint, f"s3://{bucket}/in/leads.csv", path=f"s3://{bucket}/out/results.csv"
    )

    result = _dialer(["run", str(config)])

    assert result.exit_code == 1, result.stdout + result.stderr  # one rejected row
    assert len(kyzo.calls()) == 7
    results = s3.read(f"s3://{bucket}/out/results.csv")
    assert results.height == 8
    assert results["dialer_status"].value_counts().sort("dialer_status").rows() == [
        ("placed", 7),
        ("rejected", 1),
    ]
    placed = results.filter(pl.col("dialer_status") == "placed")
    assert set(placed["dialer_call_id"]) == {call["callId"] for call in kyzo.calls()}
    errors = s3.read(f"s3://{bucket}/out/test-campaign.errors.csv")  # beside the results by default
    assert errors["crm_id"].to_list() == [rows[2]["crm_id"]]
    assert f"s3://{bucket}/out/results.csv" in result.stdout
    assert not (tmp_path / "results.csv").exists() and not list(tmp_path.glob("*.csv"))
    assert (tmp_path / "checkpoint.db").exists()  # the checkpoint stays on local disk

    status = json.loads(_dialer(["status", str(config), "--json"]).stdout)
    [run] = status["runs"]
    assert run["input_fingerprint"].startswith(f"s3://{bucket}/in/leads.csv etag ")
    assert run["input_fingerprint"].endswith(f" size {len(pl.DataFrame(rows).write_csv().encode())}")


def test_list_replaced_in_the_bucket_is_an_edited_list(
    s3: S3, kyzo: KyzoServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bucket = _bucket(request)
    url = f"s3://{bucket}/leads.csv"
    rows = lead_rows(12, seed=4)
    s3.put_leads(url, rows[:8])
    config = _config(tmp_path, kyzo, s3.endpoint, url, path=f"s3://{bucket}/results.csv")
    assert _dialer(["run", str(config), "--limit", "3"]).exit_code == 4

    s3.put_leads(url, list(reversed(rows[:8])) + rows[8:])  # re-exported: reordered, 4 new rows
    assert _dialer(["run", str(config)]).exit_code == 0

    calls = kyzo.calls()
    assert len(calls) == 12 and len({call["phoneNumber"] for call in calls}) == 12  # nobody twice
    assert s3.read(f"s3://{bucket}/results.csv")["dialer_status"].to_list() == ["placed"] * 12
    runs = json.loads(_dialer(["status", str(config), "--json"]).stdout)["runs"]
    first, second = (run["input_fingerprint"] for run in runs)
    assert first != second and " etag " in first and " etag " in second


def test_validate_on_a_url_says_what_it_read(
    s3: S3, kyzo: KyzoServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bucket = _bucket(request)
    rows = lead_rows(6)
    s3.put_leads(f"s3://{bucket}/q3/leads.csv", rows)
    s3.put_leads(f"s3://{bucket}/dnc.csv", [{"phone": rows[5]["phone"]}])  # the do-not-call list too
    config = _config(tmp_path, kyzo, s3.endpoint, f"s3://{bucket}/q3/leads.csv")
    config.write_text(
        config.read_text().replace(
            'default_region = "US"', f'default_region = "US"\ndo_not_call = "s3://{bucket}/dnc.csv"'
        )
    )

    text = _dialer(["validate", str(config), "--offline"])
    report = json.loads(_dialer(["validate", str(config), "--offline", "--json"]).stdout)

    assert text.exit_code == 0
    size = s3.client.head_object(Bucket=bucket, Key="q3/leads.csv")["ContentLength"]
    assert f"Read s3://{bucket}/q3/leads.csv: {size:,} bytes, last modified " in text.stdout
    assert "ETag " in text.stdout and f"Read s3://{bucket}/dnc.csv: " in text.stdout
    assert report["dialable"] == 5 and report["input"] == f"s3://{bucket}/q3/leads.csv"
    assert report["skipped"] == {"do-not-call": 1}
    assert kyzo.calls() == []


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("missing-key", "there is no object 'q3/nope.csv' in"),
        ("missing-bucket", "there is no bucket 'no-such-bucket' at this endpoint"),
        ("no-credentials", "no AWS credentials were found"),
        ("unreachable", "could not be reached or refused the request"),
    ],
)
def test_unreadable_list_is_one_sentence_and_exit_2(
    s3: S3, kyzo: KyzoServer, tmp_path: Path, request: pytest.FixtureRequest, case: str, needle: str
) -> None:
    bucket = _bucket(request)
    s3.put_leads(f"s3://{bucket}/q3/leads.csv", lead_rows(3))
    url = {
        "missing-key": f"s3://{bucket}/q3/nope.csv",
        "missing-bucket": "s3://no-such-bucket/q3/leads.csv",
    }.get(case, f"s3://{bucket}/q3/leads.csv")
    endpoint = f"http://127.0.0.1:{free_port()}" if case == "unreachable" else s3.endpoint
    config = _config(tmp_path, kyzo, endpoint, url)
    env: dict[str, str | None] = (
        {"AWS_ACCESS_KEY_ID": None, "AWS_SECRET_ACCESS_KEY": None} if case == "no-credentials" else {}
    )

    for command in (["validate", str(config)], ["run", str(config)]):
        result = _dialer(["--log-format", "json", *command], **env)
        assert result.exit_code == 2, result.stdout + result.stderr
        [event] = json_logs(result.stderr)
        assert needle in event["message"] and event["message"].startswith(url)
        assert "Traceback" not in result.stderr
    assert kyzo.calls() == []
    assert not (tmp_path / "checkpoint.db").exists()


def test_denied_read_is_exit_2(kyzo: KyzoServer, tmp_path: Path) -> None:
    """A server that checks signatures and knows none of our keys answers 403: access denied."""
    port = free_port()
    process = _start_moto(port, INITIAL_NO_AUTH_ACTION_COUNT="0")
    try:
        config = _config(tmp_path, kyzo, f"http://127.0.0.1:{port}", "s3://guarded/leads.csv")
        result = _dialer(["--log-format", "json", "run", str(config)])
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert result.exit_code == 2
    [event] = json_logs(result.stderr)
    assert "s3://guarded/leads.csv: access denied" in event["message"]
    assert kyzo.calls() == []


def test_failed_upload_after_calls_is_exit_4_and_export_puts_it_right(
    s3: S3, kyzo: KyzoServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bucket = _bucket(request)
    s3.put_leads(f"s3://{bucket}/leads.csv", lead_rows(4))
    config = _config(
        tmp_path, kyzo, s3.endpoint, f"s3://{bucket}/leads.csv", path="s3://results-later/results.csv"
    )

    failed = _dialer(["--log-format", "json", "run", str(config)])

    assert failed.exit_code == 4
    [event] = [e for e in json_logs(failed.stderr) if e["event"] == "error"]
    assert "s3://results-later/results.csv: the file could not be uploaded" in event["message"]
    assert f"dialer export {config}" in event["message"]
    assert len(kyzo.calls()) == 4  # the calls went out and are recorded

    s3.bucket("results-later")
    fixed = _dialer(["export", str(config)])

    assert fixed.exit_code == 0
    assert s3.read("s3://results-later/results.csv")["dialer_status"].to_list() == ["placed"] * 4
    assert len(kyzo.calls()) == 4  # export sends nothing
    assert _dialer(["run", str(config)]).exit_code == 0 and len(kyzo.calls()) == 4


def test_checkpoint_url_and_plain_http_endpoint_are_refused(kyzo: KyzoServer, tmp_path: Path) -> None:
    config = _config(
        tmp_path, kyzo, "http://storage.example.com", "s3://b/leads.csv", checkpoint="s3://b/checkpoint.db"
    )
    result = _dialer(["validate", str(config), "--offline"])
    assert result.exit_code == 2
    assert "output.checkpoint: the checkpoint stays on local disk" in result.stderr
    assert "plain http:// to a non-loopback host" in result.stderr


def test_list_over_https_style_url_from_a_loopback_server(kyzo: KyzoServer, tmp_path: Path) -> None:
    """https:// (here http:// to loopback, the only plain-http host allowed) reads a published list."""
    import functools
    import http.server
    import threading

    served = tmp_path / "www"
    served.mkdir()
    (served / "leads.csv").write_bytes(pl.DataFrame(lead_rows(4)).write_csv().encode())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as web:
        threading.Thread(target=web.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{web.server_address[1]}/leads.csv"
        document = campaign_tables(base_url=kyzo.base_url, leads=url, folder=tmp_path)
        config = write_campaign(tmp_path / "campaign.toml", document)
        result = _dialer(["run", str(config)])
        web.shutdown()
    assert result.exit_code == 0, result.stdout + result.stderr
    assert len(kyzo.calls()) == 4
    assert pl.read_csv(tmp_path / "results.csv")["dialer_status"].to_list() == ["placed"] * 4
    refused = write_campaign(
        tmp_path / "remote.toml",
        campaign_tables(base_url=kyzo.base_url, leads="http://lists.example.com/leads.csv", folder=tmp_path),
    )
    outcome = _dialer(["validate", str(refused), "--offline"])
    assert outcome.exit_code == 2 and "plain http:// is allowed only to a loopback address" in outcome.stderr


def test_flags_name_urls_parquet_and_the_report_go_up_and_nothing_stays_local(
    s3: S3, kyzo: KyzoServer, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--input/--output as URLs, a Parquet results file and the report in the bucket; the private
    staging folder is gone when the command ends."""
    import tempfile

    staging_root = tmp_path / "tmp"
    staging_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging_root))
    bucket = _bucket(request)
    s3.put_leads(f"s3://{bucket}/flags/leads.csv", lead_rows(5, seed=9))
    config = _config(
        tmp_path, kyzo, s3.endpoint, str(tmp_path / "absent.csv"), report=f"s3://{bucket}/r/report.html"
    )
    args = [
        "run",
        str(config),
        "--input",
        f"s3://{bucket}/flags/leads.csv",
        "--output",
        f"s3://{bucket}/r/out.parquet",
    ]

    result = _dialer([*args, "--limit", "2"])

    assert result.exit_code == 4
    assert (
        f"dialer run {config} --input s3://{bucket}/flags/leads.csv --output s3://{bucket}/r/out.parquet"
        in result.stdout
    )
    assert _dialer(args).exit_code == 0
    body = s3.client.get_object(Bucket=bucket, Key="r/out.parquet")["Body"].read()
    assert pl.read_parquet(io.BytesIO(body))["dialer_status"].to_list() == ["placed"] * 5
    assert "test-campaign.errors.parquet" in " ".join(s3.keys(bucket))  # beside the results
    page = s3.client.get_object(Bucket=bucket, Key="r/report.html")["Body"].read().decode()
    assert "<html" in page.lower()
    assert list(staging_root.iterdir()) == []  # the staged list and outputs are gone
    assert len(kyzo.calls()) == 5


def test_status_of_a_list_in_storage_heads_it_and_survives_the_bucket_going_away(
    s3: S3, kyzo: KyzoServer, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = _bucket(request)
    rows = lead_rows(6, seed=31)
    rows[1]["phone"] = "12345"
    s3.put_leads(f"s3://{bucket}/leads.csv", rows)
    config = _config(tmp_path, kyzo, s3.endpoint, f"s3://{bucket}/leads.csv")
    assert _dialer(["run", str(config), "--limit", "3"]).exit_code == 4

    import dialer.staging

    def no_download(*args: object) -> None:
        raise AssertionError("status fetched the list although its counts were kept")

    with monkeypatch.context() as patched:
        patched.setattr(dialer.staging, "fetch", no_download)
        kept = json.loads(_dialer(["status", str(config), "--json"]).stdout)
    assert (
        kept["counts"]["placed"] == 3 and kept["counts"]["pending"] == 2 and kept["counts"]["rejected"] == 1
    )

    s3.put_leads(f"s3://{bucket}/leads.csv", rows + lead_rows(8, seed=32)[6:])  # replaced: counted again
    counted = json.loads(_dialer(["status", str(config), "--json"]).stdout)
    assert counted["counts"]["pending"] == 4

    gone = _config(tmp_path, kyzo, f"http://127.0.0.1:{free_port()}", f"s3://{bucket}/leads.csv")
    offline = _dialer(["--log-format", "json", "status", str(gone), "--json"])
    assert offline.exit_code == 0  # the checkpoint's own counts, as for a local list that moved
    assert json.loads(offline.stdout)["counts"]["placed"] == 3
    assert "lead_list_unavailable" in offline.stderr
