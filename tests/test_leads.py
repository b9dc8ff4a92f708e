"""Lead lists: loading as text, phone normalisation, verdicts per row, and request bodies."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from campaign_builder import campaign_tables, write_campaign

from dialer.config import Settings, load_settings
from dialer.config_schema import LeadsConfig
from dialer.do_not_call import load_do_not_call
from dialer.errors import ConfigError, LeadsError
from dialer.lead_files import POLARS_NOT_UTF8, POLARS_RAGGED_ROW, _as_text, load_lead_list
from dialer.leads import KEY, PHONE, PRE_STATUS, REASON, REGION, ROW, prepare
from dialer.request_bodies import RequestSpec, Template, iter_requests, parse_template

COLUMNS = ["crm_id", "first_name", "last_name", "city", "phone", "email"]


def write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def leads_config(**overrides: Any) -> LeadsConfig:
    data: dict[str, Any] = {
        "path": "leads.csv",
        "default_region": "US",
        "columns": {"phone": "phone", "email": "email", "reference_id": "crm_id"},
        "agent_params": {"first_name": "first_name", "city": "city"},
    }
    data.update(overrides)
    return LeadsConfig.model_validate(data)


def lead(**values: str | None) -> dict[str, str | None]:
    """One lead row with every column present; unspecified cells are plausible values."""
    row: dict[str, str | None] = {
        "crm_id": "CRM-1",
        "first_name": "Ana",
        "last_name": "Lopez",
        "city": "Denver",
        "phone": "+14155550132",
        "email": "",
    }
    row.update(values)
    return row


def frame(rows: list[dict[str, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=dict.fromkeys(COLUMNS, pl.String))


def verdicts(rows: list[dict[str, str | None]], **config: Any) -> list[tuple[str | None, str | None]]:
    """(PRE_STATUS, REASON) per row after prepare()."""
    do_not_call = config.pop("do_not_call", frozenset())
    table = prepare(frame(rows), leads_config(**config), Path("leads.csv"), do_not_call=do_not_call)
    return list(table.frame.select(PRE_STATUS, REASON).iter_rows())


# ---------------------------------------------------------------- load_lead_list


def test_every_column_is_read_as_text(tmp_path: Path) -> None:
    """Numbers stay text: leading zeros and '+' survive in every column."""
    path = write(
        tmp_path, "leads.csv", "phone,zip,score\n00442079460958,00123,007\n+14155550132,02134,1.50\n"
    )
    loaded = load_lead_list(path)
    assert loaded.dtypes == [pl.String, pl.String, pl.String]
    assert loaded.rows() == [("00442079460958", "00123", "007"), ("+14155550132", "02134", "1.50")]


def test_bom_crlf_and_quoted_fields(tmp_path: Path) -> None:
    """A UTF-8 BOM is dropped, CRLF ends rows, quoted commas and newlines stay inside the value."""
    content = (
        b"\xef\xbb\xbfphone,name,note\r\n"
        b'+14155550132,"Doe, Jane","line one\r\nline two"\r\n'
        b'+14155550133,Bob,"say ""hi"""\r\n'
    )
    loaded = load_lead_list(write(tmp_path, "leads.csv", content))
    assert loaded.columns == ["phone", "name", "note"]
    assert loaded.rows() == [
        ("+14155550132", "Doe, Jane", "line one\r\nline two"),
        ("+14155550133", "Bob", 'say "hi"'),
    ]


@pytest.mark.parametrize("separator", [";", "\t", "|"], ids=["semicolon", "tab", "pipe"])
def test_delimiter_is_detected(tmp_path: Path, separator: str) -> None:
    """A ';', tab or '|' separated file is split on that character; commas stay in values."""
    content = f"phone{separator}name{separator}city\n+14155550132{separator}Doe, Jane{separator}Paris\n"
    loaded = load_lead_list(write(tmp_path, "leads.csv", content))
    assert loaded.columns == ["phone", "name", "city"]
    assert loaded.rows() == [("+14155550132", "Doe, Jane", "Paris")]


def test_explicit_delimiter_wins_over_detection(tmp_path: Path) -> None:
    """delimiter=';' is used even when the header would be sniffed as comma-separated."""
    content = 'phone;"last, first"\n+14155550132;"Doe, Jane"\n'
    path = write(tmp_path, "leads.csv", content)
    loaded = load_lead_list(path, delimiter=";")
    assert loaded.columns == ["phone", "last, first"]
    assert loaded.rows() == [("+14155550132", "Doe, Jane")]


def test_tsv_extension_means_tab(tmp_path: Path) -> None:
    """A .tsv file is split on tabs without configuration."""
    loaded = load_lead_list(write(tmp_path, "leads.tsv", "phone\tname, full\n+14155550132\tA, B\n"))
    assert loaded.columns == ["phone", "name, full"]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_declared_single_byte_encoding_keeps_accents(tmp_path: Path, encoding: str) -> None:
    """A latin-1/cp1252 file read with that encoding keeps 'é' and other accents."""
    content = "phone,first_name,city\n+14155550132,José,Besançon\n".encode(encoding)
    loaded = load_lead_list(write(tmp_path, "leads.csv", content), encoding=encoding)
    assert loaded.rows() == [("+14155550132", "José", "Besançon")]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("phone,prénom\n+14155550132,x\n".encode("latin-1"), id="in-header"),
        pytest.param("phone,name\n+14155550132,José".encode("latin-1"), id="last-byte"),
        pytest.param("phone,name\n+14155550132,é\n".encode("latin-1"), id="near-end"),
        pytest.param(
            b"phone,name\n" + b"+14155550132,abc\n" * 5000 + "+14155550133,José\n".encode("latin-1"),
            id="beyond-sniffed-head",
        ),
    ],
)
def test_invalid_utf8_asks_for_leads_encoding(tmp_path: Path, content: bytes) -> None:
    """Non-UTF-8 bytes anywhere, without an encoding, are a LeadsError pointing at leads.encoding."""
    path = write(tmp_path, "leads.csv", content)
    with pytest.raises(LeadsError) as info:
        load_lead_list(path)
    assert str(info.value).startswith(f"{path}: is not UTF-8 text; set leads.encoding")


def test_multibyte_character_cut_by_the_sniffed_head_is_fine(tmp_path: Path) -> None:
    """Valid UTF-8 whose multi-byte character straddles the 64 KiB sniff boundary still loads."""
    body = b"phone,name\n"
    while len(body) < 65536 - 40:
        body += b"+14155550132,abc\n"
    body += b"+14155550133," + b"a" * (65536 - len(body) - len(b"+14155550133,") - 1) + "é".encode() + b"\n"
    assert body[65535:65537] == "é".encode()
    loaded = load_lead_list(write(tmp_path, "leads.csv", body))
    assert loaded["name"][-1].endswith("aé")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("leads.csv", b"", "the file is empty"),
        ("leads.csv", b" \r\n\n  \n", "the file is empty"),
        ("leads.csv", b"phone,name\n", "has a header but no data rows"),
        ("leads.csv", b"phone,name", "has a header but no data rows"),
        ("leads.csv", b"phone,name\n,\n  ,  \n", "has a header but no data rows"),
        ("leads.csv", bytes(range(256)) * 8, "is binary, not a CSV text file"),
        ("leads.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "is binary, not a CSV text file"),
        ("leads.xlsx", b"PK\x03\x04 not really excel", "unsupported file type '.xlsx'"),
        ("leads.json", b'[{"phone": "+14155550132"}]', "unsupported file type '.json'"),
        ("leads.csv", b"phone,name,phone\n1,2,3\n", "the column name 'phone' appears twice"),
        ("leads.csv", b"phone,name, phone \n1,2,3\n", "the column name 'phone' appears twice"),
        ("leads.csv", b"phone,,name\n1,2,3\n", "column 2 of the header has an empty name"),
        ("leads.csv", b"phone,name,\n1,2,3\n", "column 3 of the header has an empty name"),
        ("leads.csv", b"phone,name\n1,2,3\n", "a row has more fields than the header (2 columns)"),
        ("leads.parquet", b"PAR1 truncated", "is not a readable Parquet file"),
    ],
)
def test_unreadable_list_is_a_leads_error_with_the_path(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    """Every unreadable list is a LeadsError that starts with the file path and says why."""
    path = write(tmp_path, name, content)
    with pytest.raises(LeadsError) as info:
        load_lead_list(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    assert message in text


def test_missing_file_is_a_leads_error_with_the_path(tmp_path: Path) -> None:
    """A lead list that does not exist is a LeadsError naming the path."""
    path = tmp_path / "nope.csv"
    with pytest.raises(LeadsError) as info:
        load_lead_list(path)
    assert str(info.value) == f"{path}: the lead list does not exist (check leads.path or --input)"


def test_folder_is_a_leads_error(tmp_path: Path) -> None:
    """A folder given as the lead list is a LeadsError naming it."""
    folder = tmp_path / "leads.csv"
    folder.mkdir()
    with pytest.raises(LeadsError, match="is a folder"):
        load_lead_list(folder)


def test_unknown_encoding_is_a_leads_error(tmp_path: Path) -> None:
    """An encoding name Python does not know is a LeadsError naming it."""
    path = write(tmp_path, "leads.csv", "phone\n+14155550132\n")
    with pytest.raises(LeadsError, match="unknown encoding 'klingon'"):
        load_lead_list(path, encoding="klingon")


def test_header_whitespace_is_stripped(tmp_path: Path) -> None:
    """Spaces around header names are removed; values are left as written."""
    loaded = load_lead_list(write(tmp_path, "leads.csv", " phone ,\tfirst_name  \n+14155550132, Ana \n"))
    assert loaded.columns == ["phone", "first_name"]
    assert loaded.rows() == [("+14155550132", " Ana ")]


def test_blank_trailing_rows_are_dropped(tmp_path: Path) -> None:
    """Rows whose every cell is empty or whitespace at the end of the file are dropped."""
    content = "phone,name\n+14155550132,Ana\n+14155550133,\n,\n , \n   \n\n"
    loaded = load_lead_list(write(tmp_path, "leads.csv", content))
    assert loaded.rows() == [("+14155550132", "Ana"), ("+14155550133", None)]


def test_parquet_columns_are_read_as_text(tmp_path: Path) -> None:
    """Parquet Int64, float and all-null columns all load as String, nulls kept."""
    path = tmp_path / "leads.parquet"
    pl.DataFrame(
        {
            "phone": pl.Series([4155550132, None, 4155550134], dtype=pl.Int64),
            "nothing": pl.Series([None, None, None], dtype=pl.Null),
            "score": [1.5, 2.0, None],
            "name": ["a", "b", "c"],
        }
    ).write_parquet(path)
    loaded = load_lead_list(path)
    assert loaded.schema == pl.Schema(dict.fromkeys(["phone", "nothing", "score", "name"], pl.String))
    assert loaded.rows() == [
        ("4155550132", None, "1.5", "a"),
        (None, None, "2.0", "b"),
        ("4155550134", None, None, "c"),
    ]


def test_parquet_blank_rows_are_dropped(tmp_path: Path) -> None:
    """A Parquet row with only nulls and blanks is dropped like a blank CSV row."""
    path = tmp_path / "leads.parquet"
    pl.DataFrame({"phone": ["+14155550132", None, " "], "name": ["a", None, None]}).write_parquet(path)
    assert load_lead_list(path).rows() == [("+14155550132", "a")]


NOT_TEXT = {
    "list": pl.Series([["a", "b"], []]),
    "array": pl.Series([[1, 2], [3, 4]], dtype=pl.Array(pl.Int64, 2)),
    "struct": pl.Series([{"street": "Main"}, {"street": "High"}]),
    "binary": pl.Series([b"\xff\xfe", b"ok"]),
    "duration": pl.Series([timedelta(minutes=5), timedelta(0)]),
}


@pytest.mark.parametrize("kind", NOT_TEXT)
def test_parquet_column_without_a_text_form_is_a_leads_error(tmp_path: Path, kind: str) -> None:
    """A nested, non-UTF-8 binary or duration column is a LeadsError naming it, not a cast crash."""
    path = tmp_path / "leads.parquet"
    pl.DataFrame({"phone": ["+14155550132", "+14155550133"], "extra": NOT_TEXT[kind]}).write_parquet(path)
    with pytest.raises(LeadsError) as info:
        load_lead_list(path)
    assert str(info.value) == (
        f"{path}: column 'extra' ({kind}) cannot be read as text; lead lists need flat columns "
        "(text, numbers, dates): flatten or drop them and export the list again"
    )


def test_every_column_without_a_text_form_is_named() -> None:
    """All such columns are listed in one error, Python objects included."""
    data = pl.DataFrame(
        {
            "phone": ["+14155550132"],
            "tags": NOT_TEXT["list"].head(1),
            "raw": pl.Series([object()], dtype=pl.Object),
        }
    )
    with pytest.raises(LeadsError) as info:
        _as_text(Path("leads.parquet"), data)
    assert str(info.value).startswith(
        "leads.parquet: columns 'tags' (list), 'raw' (object) cannot be read as text; "
    )


def test_parquet_binary_utf8_text_is_read_as_text(tmp_path: Path) -> None:
    """Old writers store strings as plain binary: valid UTF-8 bytes load as text."""
    path = tmp_path / "leads.parquet"
    pl.DataFrame({"phone": [b"+14155550132"], "name": ["Zo\u00eb".encode()]}).write_parquet(path)
    assert load_lead_list(path).rows() == [("+14155550132", "Zo\u00eb")]


# ---------------------------------------------------------------- prepare: phones


@pytest.mark.parametrize(
    ("raw", "e164", "region"),
    [
        ("(415) 555-0132", "+14155550132", "US"),
        ("415.555.0132", "+14155550132", "US"),
        ("  415 555 0132  ", "+14155550132", "US"),
        ("+44 20 7946 0958", "+442079460958", "GB"),
        ("011 44 20 7946 0958", "+442079460958", "GB"),
        ("1-415-555-0132", "+14155550132", "US"),
        ("4155550132.0", "+14155550132", "US"),
        ("4.155550132E9", "+14155550132", "US"),
        ("4.155550132e+9", "+14155550132", "US"),
        ("+1 416 555 0132", "+14165550132", "CA"),
    ],
)
def test_phone_forms_normalise_to_e164(raw: str, e164: str, region: str) -> None:
    """Common written and spreadsheet forms become E.164 with their region, and are dialable."""
    table = prepare(frame([lead(phone=raw)]), leads_config(), Path("leads.csv"))
    assert table.frame.select(PHONE, REGION, PRE_STATUS, REASON).row(0) == (e164, region, None, None)
    assert table.dialable().height == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12345", "impossible phone number (wrong number of digits)"),
        ("555-CALL-NOW", "invalid phone number (not a number in use in its country)"),
        ("call me", "invalid phone number: not a phone number"),
        ("", "missing phone number"),
        ("   ", "missing phone number"),
        (None, "missing phone number"),
        ("+1 555 010 0199", "invalid phone number (not a number in use in its country)"),
        ("+999 1234 5678", "invalid phone number: unknown country code"),
        ("1" * 1_000, "phone number is too long (1000 characters)"),
        ("4.15555E9", "phone number was rounded by a spreadsheet (scientific notation)"),
        ("4.155550132E12", "phone number was rounded by a spreadsheet (scientific notation)"),
    ],
)
def test_bad_phone_is_rejected_with_reason(raw: str | None, reason: str) -> None:
    """An unusable phone value is rejected with a reason saying what is wrong, and has no key."""
    table = prepare(frame([lead(phone=raw)]), leads_config(), Path("leads.csv"))
    assert table.frame.select(PRE_STATUS, REASON, PHONE, KEY).row(0) == ("rejected", reason, None, None)
    assert table.dialable().height == 0


def test_allowed_regions_reject_other_countries() -> None:
    """With allowed_regions US and CA, a UK number is rejected naming its region."""
    rows = [lead(phone="+44 20 7946 0958"), lead(phone="+1 416 555 0132"), lead(phone="4155550133")]
    assert verdicts(rows, allowed_regions=["US", "CA"]) == [
        ("rejected", "phone number region GB is not allowed (allowed: CA, US)"),
        (None, None),
        (None, None),
    ]


def test_rows_are_numbered_from_one_in_input_order() -> None:
    """ROW is the 1-based data row number in input order."""
    table = prepare(frame([lead(), lead(phone="x"), lead()]), leads_config(dedupe="none"), Path("l.csv"))
    assert table.frame[ROW].to_list() == [1, 2, 3]
    assert table.rows == 3
    assert table.input_columns == COLUMNS


# ---------------------------------------------------------------- prepare: dedupe and do-not-call


def test_dedupe_by_phone_skips_later_copies() -> None:
    """dedupe="phone": the first of each E.164 number is dialable, later ones name that row."""
    rows = [
        lead(phone="bad"),
        lead(phone="(415) 555-0132"),
        lead(phone="4155550133"),
        lead(phone="+1 415 555 0132"),
        lead(phone="415.555.0133"),
        lead(phone="1-415-555-0132"),
    ]
    assert verdicts(rows, dedupe="phone") == [
        ("rejected", "invalid phone number: not a phone number"),
        (None, None),
        (None, None),
        ("skipped", "duplicate of row 2"),
        ("skipped", "duplicate of row 3"),
        ("skipped", "duplicate of row 2"),
    ]


def test_rejected_row_does_not_count_as_first_occurrence() -> None:
    """A rejected row is not the original a later copy of its number is a duplicate of."""
    rows = [lead(phone="4155550132", email="not-an-email"), lead(phone="4155550132")]
    assert verdicts(rows) == [("rejected", "invalid email in column 'email'"), (None, None)]


def test_dedupe_by_reference_id() -> None:
    """dedupe="reference_id": same id is a duplicate whatever the phone; same phone is not."""
    rows = [
        lead(crm_id="A", phone="4155550132"),
        lead(crm_id="B", phone="4155550132"),
        lead(crm_id=" A ", phone="4155550199"),
    ]
    table = prepare(frame(rows), leads_config(dedupe="reference_id"), Path("leads.csv"))
    assert list(table.frame.select(KEY, PRE_STATUS, REASON).iter_rows()) == [
        ("ref:A", None, None),
        ("ref:B", None, None),
        ("ref:A", "skipped", "duplicate of row 1"),
    ]


def test_dedupe_none_keeps_identical_rows_with_distinct_keys() -> None:
    """dedupe="none": identical rows are all dialable and each gets its own checkpoint key."""
    rows = [lead(), lead(), lead(phone="(415) 555-0132")]
    table = prepare(frame(rows), leads_config(dedupe="none"), Path("leads.csv"))
    assert table.dialable().height == 3
    keys = table.frame[KEY].to_list()
    assert len(set(keys)) == 3
    assert all(key.startswith("+14155550132|CRM-1|") for key in keys)


def test_dedupe_none_keys_ignore_rejected_rows() -> None:
    """Deleting a rejected row from the list must not renumber (and re-dial) the valid rows after it."""
    with_bad = [lead(email="not-an-email"), lead(), lead()]
    before = prepare(frame(with_bad), leads_config(dedupe="none"), Path("leads.csv"))
    after = prepare(frame(with_bad[1:]), leads_config(dedupe="none"), Path("leads.csv"))
    assert before.frame[KEY].to_list()[0] is None
    assert before.frame[KEY].to_list()[1:] == after.frame[KEY].to_list()


def test_missing_reference_id_is_rejected() -> None:
    """With a reference column mapped, an empty referenceId is rejected naming the column."""
    assert verdicts([lead(crm_id=""), lead(crm_id=None, phone="4155550133")]) == [
        ("rejected", "missing referenceId in column 'crm_id'"),
        ("rejected", "missing referenceId in column 'crm_id'"),
    ]


def test_do_not_call_numbers_are_skipped() -> None:
    """A number on the do-not-call set is skipped with reason 'do-not-call', whatever its form."""
    rows = [lead(phone="(415) 555-0132"), lead(phone="4155550133"), lead(phone="+1 415-555-0132")]
    result = verdicts(rows, do_not_call=frozenset({"+14155550132"}))
    assert result == [("skipped", "do-not-call"), (None, None), ("skipped", "do-not-call")]


def test_rejection_wins_over_do_not_call() -> None:
    """A row that is both invalid and on the do-not-call list is reported as rejected."""
    rows = [lead(phone="4155550132", email="x@")]
    assert verdicts(rows, do_not_call=frozenset({"+14155550132"})) == [
        ("rejected", "invalid email in column 'email'")
    ]


# ---------------------------------------------------------------- prepare: other columns


@pytest.mark.parametrize(
    ("first_name", "city", "verdict"),
    [
        ("Ana", "Denver", (None, None)),
        ("Ana", "", (None, None)),
        ("Ana", None, (None, None)),
        ("", "Denver", ("rejected", "missing required value in column 'first_name'")),
        ("   ", "Denver", ("rejected", "missing required value in column 'first_name'")),
        (None, "Denver", ("rejected", "missing required value in column 'first_name'")),
    ],
)
def test_required_agent_params(first_name: str | None, city: str | None, verdict: tuple[Any, Any]) -> None:
    """An empty required agent param rejects the row naming its column; others may be empty."""
    rows = [lead(first_name=first_name, city=city)]
    assert verdicts(rows, required=["first_name"]) == [verdict]


@pytest.mark.parametrize(
    ("email", "verdict"),
    [
        ("ana@example.com", (None, None)),
        ("  ana@example.com ", (None, None)),
        ("", (None, None)),
        (None, (None, None)),
        ("ana@", ("rejected", "invalid email in column 'email'")),
        ("ana.example.com", ("rejected", "invalid email in column 'email'")),
        ("ana lopez@example.com", ("rejected", "invalid email in column 'email'")),
        ("ana@localhost", ("rejected", "invalid email in column 'email'")),
    ],
)
def test_email_is_validated_only_when_present(email: str | None, verdict: tuple[Any, Any]) -> None:
    """A malformed email rejects the row; an empty one is fine."""
    assert verdicts([lead(email=email)]) == [verdict]


@pytest.mark.parametrize(
    ("file_column", "config", "hint"),
    [
        (
            "Phone",
            {"columns": {"phone": "phone"}, "agent_params": {}},
            "column 'phone' named by leads.columns.phone",
        ),
        (
            "First Name",
            {"columns": {"phone": "phone"}, "agent_params": {"name": "first_name"}},
            "column 'first_name' named by leads.agent_params.name",
        ),
    ],
)
def test_missing_mapped_column_names_it_and_hints(
    file_column: str, config: dict[str, Any], hint: str
) -> None:
    """A mapped column absent from the file is a LeadsError naming it, with did-you-mean and the listing."""
    other = "other" if file_column == "Phone" else "phone"
    data = pl.DataFrame({file_column: ["x"], other: ["y"]})
    with pytest.raises(LeadsError) as info:
        prepare(data, leads_config(**config), Path("in/leads.csv"))
    text = str(info.value)
    assert text == (
        f"in/leads.csv: {hint} is not in the file (did you mean '{file_column}'?). "
        f"The file's columns are: {file_column}, {other}"
    )


def test_every_missing_column_is_listed() -> None:
    """All missing mapped columns are reported in one error; no hint without a near-miss."""
    data = pl.DataFrame({"tel": ["x"]})
    with pytest.raises(LeadsError) as info:
        prepare(data, leads_config(), Path("leads.csv"))
    text = str(info.value)
    for column in ("phone", "email", "crm_id", "first_name", "city"):
        assert f"column '{column}' named by" in text
    assert "did you mean" not in text
    assert text.endswith("The file's columns are: tel")


# ---------------------------------------------------------------- load_do_not_call


def test_do_not_call_plain_list_in_mixed_forms(tmp_path: Path) -> None:
    """A plain text list is normalised line by line; blanks and junk are ignored."""
    path = write(
        tmp_path,
        "dnc.txt",
        "(415) 555-0132\n+1 415 555 0133\n\n  415.555.0134  \n1-415-555-0135\n"
        "+44 20 7946 0958\n4155550136.0\nnot a number\n12345\n",
    )
    assert load_do_not_call(path, "US") == frozenset(
        {
            "+14155550132",
            "+14155550133",
            "+14155550134",
            "+14155550135",
            "+14155550136",
            "+442079460958",
        }
    )


def test_do_not_call_csv_uses_the_phone_column(tmp_path: Path) -> None:
    """In a CSV do-not-call list the 'phone' column is used, even when it is not the first."""
    path = write(
        tmp_path,
        "dnc.csv",
        "\ufeffname,Phone,note\nA,(415) 555-0132,4155550199\nB,,x\nC,+44 20 7946 0958,\nD,junk,\n",
    )
    assert load_do_not_call(path, "US") == frozenset({"+14155550132", "+442079460958"})


def test_do_not_call_uses_default_region(tmp_path: Path) -> None:
    """National numbers in the do-not-call list are read in the campaign's default region."""
    path = write(tmp_path, "dnc.txt", "020 7946 0958\n")
    assert load_do_not_call(path, "GB") == frozenset({"+442079460958"})


def test_do_not_call_empty_and_missing(tmp_path: Path) -> None:
    """An empty list blocks nothing; a missing one is a LeadsError naming the path."""
    assert load_do_not_call(write(tmp_path, "dnc.txt", "\n \n"), "US") == frozenset()
    absent = tmp_path / "absent.txt"
    with pytest.raises(LeadsError, match="the do-not-call list does not exist"):
        load_do_not_call(absent, "US")


@pytest.mark.parametrize(
    "header",
    [
        "Name,Mobile",
        "Name,Phone Number",
        "name;MOBILE_PHONE",
        "Name\tcell",
        "Name,Tel",
        "Name,phone-number",
        "Name,MSISDN",
        "Name,E164",
    ],
)
def test_do_not_call_csv_finds_the_phone_column_by_header(tmp_path: Path, header: str) -> None:
    """A phone column named in any usual way is used, not the first column."""
    separator = next(sep for sep in ",;\t" if sep in header)
    rows = ["Ana,(415) 555-0132", "Bob,+44 20 7946 0958"]
    content = "\n".join([header, *(row.replace(",", separator) for row in rows)]) + "\n"
    path = write(tmp_path, "dnc.csv", content)
    assert load_do_not_call(path, "US") == frozenset({"+14155550132", "+442079460958"})


def test_do_not_call_csv_without_a_phone_header_uses_the_column_of_numbers(tmp_path: Path) -> None:
    """With no phone-like header, the column holding the most phone numbers is used."""
    content = "Name,Contact,Note\nAna,(415) 555-0132,call after 2\nBob,4155550133,\nCy,not given,x\n"
    path = write(tmp_path, "dnc.csv", content)
    assert load_do_not_call(path, "US") == frozenset({"+14155550132", "+14155550133"})


def test_do_not_call_csv_without_a_header_row_keeps_its_first_number(tmp_path: Path) -> None:
    """A list exported without a header row: the first line's number is blocked too."""
    path = write(tmp_path, "dnc.csv", "4155550132,Ana\n4155550133,Bob\n")
    assert load_do_not_call(path, "US") == frozenset({"+14155550132", "+14155550133"})


def test_do_not_call_parquet_mobile_column_of_integers(tmp_path: Path) -> None:
    """A Parquet list with an integer 'Mobile' column after a name column is read from 'Mobile'."""
    path = tmp_path / "dnc.parquet"
    pl.DataFrame({"Name": ["Ana", "Bob"], "Mobile": [4155550132, 4155550133]}).write_parquet(path)
    assert load_do_not_call(path, "US") == frozenset({"+14155550132", "+14155550133"})


@pytest.mark.parametrize(
    ("content", "blocked"),
    [
        (
            "# opted out in March\n+1 617 555 0166\n# and April\n(212) 555-0100\n",
            {"+16175550166", "+12125550100"},
        ),
        ("Mobile\n4155550132\n", {"+14155550132"}),
        ("phone\n4155550132\njunk\n", {"+14155550132"}),
        ("Mobile\n", set()),
        ("Name,Phone\n", set()),
    ],
    ids=["comments", "one-column-csv", "half-invalid", "header-only", "csv-header-only"],
)
def test_do_not_call_comments_headers_and_half_invalid(
    tmp_path: Path, content: str, blocked: set[str]
) -> None:
    """'#' lines and a lone header are not numbers; up to half invalid values is allowed."""
    assert load_do_not_call(write(tmp_path, "dnc.txt", content), "US") == frozenset(blocked)


def test_do_not_call_without_any_number_stops_the_run(tmp_path: Path) -> None:
    """A list with rows but no phone number anywhere is a LeadsError saying what was tried."""
    path = write(tmp_path, "dnc.csv", "Name,Email\nAna,ana@example.com\nBob,bob@example.com\n")
    with pytest.raises(LeadsError) as info:
        load_do_not_call(path, "US")
    assert str(info.value) == (
        f"{path}: the do-not-call list has no valid phone number: tried column 'Name' (no header is a "
        "phone column name such as 'phone' or 'mobile', so picked by content), 2 non-empty values, "
        "default region US. Put the numbers in a column named 'phone' (or one per line) and check "
        "leads.default_region; the run stops rather than ignore leads.do_not_call"
    )


@pytest.mark.parametrize(
    ("name", "content", "region", "needle"),
    [
        (
            "dnc.csv",
            "Name,Phone\nAna,\nBob, \n",
            "US",
            "no valid phone number: tried column 'Phone' (picked by its header), 0 non-empty values",
        ),
        (
            "dnc.txt",
            "hello\nworld\n",
            "US",
            "no valid phone number: tried its lines (one number per line), 2 non-empty values",
        ),
        (
            "dnc.txt",
            "020 7946 0958\n020 7946 0959\n",
            "US",
            "no valid phone number: tried its lines (one number per line), 2 non-empty values, "
            "default region US",
        ),
        (
            "dnc.csv",
            "Name,Phone\nAna,x\nBob,call me\nCy,4155550132\n",
            "US",
            "2 of 3 values in the do-not-call list are not valid phone numbers: tried column 'Phone' "
            "(picked by its header), default region US. Fix the list or leads.do_not_call; the run "
            "stops rather than ignore part of the list",
        ),
    ],
    ids=["empty-phone-column", "words", "wrong-region", "mostly-invalid"],
)
def test_unreadable_do_not_call_list_is_a_leads_error(
    tmp_path: Path, name: str, content: str, region: str, needle: str
) -> None:
    """A list that yields no numbers, or mostly invalid ones, is an error naming file and column."""
    path = write(tmp_path, name, content)
    with pytest.raises(LeadsError) as info:
        load_do_not_call(path, region)
    assert str(info.value).startswith(f"{path}: ")
    assert needle in str(info.value)


def test_do_not_call_folder_or_unreadable_file_is_a_leads_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder or a file without read permission names the path and leads.do_not_call."""
    with pytest.raises(LeadsError) as info:
        load_do_not_call(tmp_path, "US")
    assert str(info.value) == (
        f"{tmp_path}: is a folder, not a do-not-call list file; point leads.do_not_call at the file"
    )

    locked = write(tmp_path, "dnc.txt", "4155550132\n")
    real_open = Path.open

    def denied(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(LeadsError) as info:
        load_do_not_call(locked, "US")
    assert str(info.value) == (
        f"{locked}: the do-not-call list cannot be read (Permission denied); "
        "check the file's permissions or leads.do_not_call"
    )


# ---------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("${first_name}", "Ana"),
        ("Hi ${first_name}!", "Hi Ana!"),
        ("${first_name} ${last_name} from ${city}", "Ana Lopez from Denver"),
        ("${first_name}${last_name}", "AnaLopez"),
        ("${ first_name }", "Ana"),
        ("cost $${price} for ${first_name}", "cost ${price} for Ana"),
        ("{{ budget }} for ${first_name}", "{{ budget }} for Ana"),
        ("$5 for ${first_name}", "$5 for Ana"),
    ],
)
def test_template_renders_row_values(text: str, rendered: str) -> None:
    """${column} anywhere in a string becomes the row's value; $${ and {{ }} are literal."""
    template = parse_template(text)
    assert isinstance(template, Template)
    assert template.render({"first_name": "Ana", "last_name": "Lopez", "city": "Denver"}) == rendered


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("plain text", "plain text"),
        ("$${first_name}", "${first_name}"),
        ("Your budget: {{ budget }}.", "Your budget: {{ budget }}."),
        ("{{first_name}} $${x} {{ y }}", "{{first_name}} ${x} {{ y }}"),
        ("$ {not} $${", "$ {not} ${"),
        ("", ""),
    ],
)
def test_template_without_references_is_a_plain_string(text: str, literal: str) -> None:
    """A string with no ${column} comes back as a plain string, $${ unescaped to ${."""
    assert parse_template(text) == literal


def test_template_lists_its_columns() -> None:
    """A template reports the columns it reads, in order."""
    template = parse_template("${a} and ${ b } and ${a}")
    assert isinstance(template, Template)
    assert template.columns == ["a", "b", "a"]


TOOLS = """
[[tools]]
tool_type = "webhook"
execution_order = 2
args = { webhook_url = "https://hooks.example/${env:HOOK_PATH}", method = "POST", timeout = 5, \
headers = { Authorization = "Bearer ${env:HOOK_TOKEN}", X-Lead = "${crm_id}" }, \
filters = ["${first_name} ${last_name}", { note = "$${literal} {{ budget }}", n = 3 }] }

[[tools]]
tool_type = "sentiment"
execution_order = 0
args = { language = "English" }

[[tools]]
tool_type = "email"
execution_order = 1
args = { subject = "Thanks, {{ first_name }}!", body = "<p>Hi ${first_name} ${last_name}, from ${city}</p>" }
"""

ENV = {"HOOK_TOKEN": "tok-123", "HOOK_PATH": "in", "KYZO_API_KEY": "k"}


def settings_for(tmp_path: Path, tools: str = TOOLS) -> Settings:
    """The standard campaign with these hand-written [[tools]] (their quoting is what is tested)."""
    tables = campaign_tables(
        base_url="https://api.kyzo.example/v1",
        leads="leads.csv",
        folder=tmp_path,
        name="spring-2025",
        organization_id="org_1",
        agent_id="agent_1",
        from_phone_number_id="pn_7",
        tools=[],
    )
    return load_settings(write_campaign(tmp_path / "campaign.toml", tables, tools), env=ENV)


def requests_for(tmp_path: Path, rows: list[dict[str, str | None]], tools: str = TOOLS) -> list[Any]:
    settings = settings_for(tmp_path, tools)
    table = prepare(frame(rows), settings.leads, settings.leads_path)
    spec = RequestSpec.build(settings, table.input_columns)
    return list(iter_requests(table.dialable(), spec))


def test_body_has_contract_fields_and_rendered_tools(tmp_path: Path) -> None:
    """A row becomes the full placeCall body: E.164 phone, params, referenceId, rendered tools in order."""
    row = lead(phone="(415) 555-0132", email=" ana@example.com ", crm_id=" CRM-7 ")
    (request,) = requests_for(tmp_path, [row])
    assert request.row == 1
    assert request.key == "+14155550132"
    assert request.phone == "+14155550132"
    assert request.body == {
        "fromPhoneNumberId": "pn_7",
        "phoneNumber": "+14155550132",
        "email": "ana@example.com",
        "agentParams": {"first_name": "Ana", "city": "Denver"},
        "referenceId": "CRM-7",
        "tools": [
            {"tool_type": "sentiment", "execution_order": 0, "args": {"language": "English"}},
            {
                "tool_type": "email",
                "execution_order": 1,
                "args": {
                    "subject": "Thanks, {{ first_name }}!",
                    "body": "<p>Hi Ana Lopez, from Denver</p>",
                },
            },
            {
                "tool_type": "webhook",
                "execution_order": 2,
                "args": {
                    "webhook_url": "https://hooks.example/in",
                    "method": "POST",
                    "timeout": 5,
                    "headers": {"Authorization": "Bearer tok-123", "X-Lead": " CRM-7 "},
                    "filters": ["Ana Lopez", {"note": "${literal} {{ budget }}", "n": 3}],
                },
            },
        ],
    }


def test_empty_email_is_omitted_and_params_are_strings(tmp_path: Path) -> None:
    """An empty email cell leaves `email` out; empty agent params are sent as ''."""
    rows = [lead(email="", city=""), lead(phone="4155550133", email=None, city=None, crm_id="CRM-2")]
    bodies = [r.body for r in requests_for(tmp_path, rows, tools="")]
    assert [("email" in b) for b in bodies] == [False, False]
    assert [b["agentParams"] for b in bodies] == [
        {"first_name": "Ana", "city": ""},
        {"first_name": "Ana", "city": ""},
    ]
    assert all("tools" not in b for b in bodies)


@pytest.mark.parametrize(
    "value",
    ["Zoë 😀", "tab\there", "bell\x07", "new\nline", "  padded  ", "${first_name}", "{{ budget }}"],
)
def test_cell_values_pass_through_unchanged(tmp_path: Path, value: str) -> None:
    """Control characters, emoji, spaces and template-looking text in a cell are sent verbatim."""
    tools = (
        '[[tools]]\ntool_type = "whatsapp"\nexecution_order = 0\nargs = { customerName = "${first_name}" }'
    )
    tools = "\n" + tools + "\n"
    (request,) = requests_for(tmp_path, [lead(first_name=value)], tools=tools)
    assert request.body["agentParams"]["first_name"] == value
    assert request.body["tools"][0]["args"] == {"customerName": value}


def test_reference_id_comes_from_the_mapped_column(tmp_path: Path) -> None:
    """referenceId is the trimmed value of leads.columns.reference_id for that row."""
    rows = [lead(crm_id="CRM-1"), lead(crm_id="CRM-2", phone="4155550133")]
    assert [r.body["referenceId"] for r in requests_for(tmp_path, rows, tools="")] == ["CRM-1", "CRM-2"]


def test_template_naming_a_missing_column_is_a_config_error(tmp_path: Path) -> None:
    """A ${column} that is not in the lead list is a ConfigError naming the column."""
    settings = settings_for(tmp_path)
    with pytest.raises(ConfigError) as info:
        RequestSpec.build(settings, ["phone", "email", "crm_id", "first_name", "city"])
    assert len(info.value.problems) == 1
    assert info.value.problems[0].startswith("tools: '${last_name}' names a column that is not in leads.csv")
    assert "$${" in info.value.problems[0]


def test_iter_requests_keeps_input_order_across_slices(tmp_path: Path) -> None:
    """Bodies come out in input order across slices, skipping rows that are not dialable."""
    phones = ["4155550101", "4155550102", "bad", "4155550104", "4155550105", "4155550106"]
    rows = [lead(phone=p, crm_id=f"CRM-{i}") for i, p in enumerate(phones, start=1)]
    settings = settings_for(tmp_path)
    table = prepare(frame(rows), settings.leads, settings.leads_path)
    spec = RequestSpec.build(settings, table.input_columns)
    requests = list(iter_requests(table.dialable(), spec, slice_size=2))
    assert [r.row for r in requests] == [1, 2, 4, 5, 6]
    assert [r.body["referenceId"] for r in requests] == ["CRM-1", "CRM-2", "CRM-4", "CRM-5", "CRM-6"]
    assert [r.phone for r in requests] == [
        "+14155550101",
        "+14155550102",
        "+14155550104",
        "+14155550105",
        "+14155550106",
    ]
    assert [r.key for r in requests] == [r.phone for r in requests]


@pytest.mark.parametrize(
    ("data", "words"),
    [(b"a,b\n\xff\xfe,1\n", POLARS_NOT_UTF8), (b"a,b\n1,2,3\n", POLARS_RAGGED_ROW)],
)
def test_polars_still_says_what_the_reader_listens_for(data: bytes, words: str) -> None:
    """The reader tells bad encoding from a ragged row by polars' words: a rewording fails here first."""
    with pytest.raises(pl.exceptions.ComputeError) as caught:
        pl.read_csv(data, infer_schema=False)
    assert words in str(caught.value).lower()
