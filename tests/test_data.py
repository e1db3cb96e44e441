"""Tests for mdf_guard.data: every record shape, every format, every bad-input case.

Fixtures are real files written into tmp_path, so the readers are exercised exactly
as they run on user data.
"""

from __future__ import annotations

import builtins
import csv
import gzip
import hashlib
import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
import zstandard

from mdf_guard import data
from mdf_guard.data import (DATA_SUFFIXES, MAX_RECORD_BYTES, Conversation, Shard, Turn,
                            find_data_files, is_data_file, open_shard, read_conversations,
                            shard_hash)
from mdf_guard.errors import InputError

DEV_DATA = Path("/work/shared/data")

U, A, S = "user", "assistant", "system"


# --------------------------------------------------------------------------- helpers

def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_all(path: Path, **kwargs) -> list[Conversation]:
    return list(read_conversations(path, **kwargs))


def error_of(path: Path, **kwargs) -> InputError:
    with pytest.raises(InputError) as info:
        read_all(path, **kwargs)
    return info.value


def roles_contents(conv: Conversation) -> list[tuple[str, str]]:
    return [(t.role, t.content) for t in conv.turns]


def write_arrow_stream(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=2)


def write_datasets_folder(folder: Path, tables: dict[str, pa.Table]) -> Path:
    """What `datasets.Dataset.save_to_disk` leaves: Arrow streams plus two JSON files."""
    folder.mkdir(parents=True)
    for name, table in tables.items():
        write_arrow_stream(folder / name, table)
    (folder / "dataset_info.json").write_text(json.dumps({"features": {}}))
    state = {"_data_files": [{"filename": name} for name in tables], "_split": "train"}
    (folder / "state.json").write_text(json.dumps(state))
    return folder


QA = [{"question": f"q{i}", "response": f"r{i}"} for i in range(3)]


# --------------------------------------------------------------------------- shapes

SHAPES = [
    ("openai", {"messages": [{"role": "user", "content": "hi"},
                             {"role": "assistant", "content": "hello"}]},
     [(U, "hi"), (A, "hello")]),
    ("openai multi-turn with system", {"messages": [
        {"role": "system", "content": "be nice"}, {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"}]},
     [(S, "be nice"), (U, "a"), (A, "b"), (U, "c"), (A, "d")]),
    ("sharegpt", {"conversations": [{"from": "system", "value": "sys"},
                                    {"from": "human", "value": "q"},
                                    {"from": "gpt", "value": "a"}]},
     [(S, "sys"), (U, "q"), (A, "a")]),
    ("openai text parts", {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "a"},
                                          {"type": "text", "text": "b"}]}]},
     [(U, "hi"), (A, "ab")]),
    ("prompt/completion", {"prompt": "p", "completion": "c"}, [(U, "p"), (A, "c")]),
    ("prompt as messages", {"prompt": [{"role": "system", "content": "s"},
                                       {"role": "user", "content": "p"}],
                            "completion": "c"},
     [(S, "s"), (U, "p"), (A, "c")]),
    ("conversational prompt/completion", {
        "prompt": [{"role": "user", "content": "p"}],
        "completion": [{"role": "assistant", "content": "c"}]},
     [(U, "p"), (A, "c")]),
    ("alpaca with input", {"instruction": "Sum", "input": "1 2", "output": "3"},
     [(U, "Sum\n\n1 2"), (A, "3")]),
    ("alpaca empty input", {"instruction": "Say hi", "input": "", "output": "hi"},
     [(U, "Say hi"), (A, "hi")]),
    ("alpaca no input, extra text field", {"instruction": "i", "output": "o", "text": "x"},
     [(U, "i"), (A, "o")]),
    ("dolly", {"instruction": "i", "context": "ctx", "response": "r"},
     [(U, "i\n\nctx"), (A, "r")]),
    ("question/response", {"question": "q", "response": "r"}, [(U, "q"), (A, "r")]),
    ("question/answer", {"question": "q", "answer": "a"}, [(U, "q"), (A, "a")]),
    ("prompt/response", {"prompt": "p", "response": "r"}, [(U, "p"), (A, "r")]),
    ("text", {"text": "just text"}, [(A, "just text")]),
    ("system field", {"system": "sys", "question": "q", "response": "r"},
     [(S, "sys"), (U, "q"), (A, "r")]),
    ("system field equal to system turn", {
        "system": "s", "messages": [{"role": "system", "content": "s"},
                                    {"role": "user", "content": "u"},
                                    {"role": "assistant", "content": "a"}]},
     [(S, "s"), (U, "u"), (A, "a")]),
    ("null fields are absent", {"messages": None, "text": "t", "system": None},
     [(A, "t")]),
    ("messages as a JSON string", {"messages": json.dumps(
        [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}])},
     [(U, "u"), (A, "a")]),
]


@pytest.mark.parametrize("record,expected", [s[1:] for s in SHAPES],
                         ids=[s[0] for s in SHAPES])
def test_shapes(tmp_path: Path, record: dict, expected: list) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [record])
    (conv,) = read_all(path)
    assert roles_contents(conv) == expected
    assert conv.response == expected[-1][1]
    assert conv.prompt == tuple(Turn(r, c) for r, c in expected[:-1])
    assert conv.source == f"{path}:1"


def test_dataclasses_are_frozen() -> None:
    conv = Conversation(turns=(Turn("user", "q"), Turn("assistant", "a")), source="x:1")
    with pytest.raises(AttributeError):
        conv.source = "y"  # type: ignore[misc]
    assert hash(conv) == hash(Conversation(conv.turns, "x:1"))


# --------------------------------------------------------------------------- formats

def test_jsonl_skips_blank_lines_and_numbers_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text("\n" + json.dumps(QA[0]) + "\n  \n" + json.dumps(QA[1]) + "\r\n"
                    + json.dumps(QA[2]))  # no final newline, one CRLF
    convs = read_all(path)
    assert [c.source for c in convs] == [f"{path}:2", f"{path}:4", f"{path}:5"]
    assert [c.response for c in convs] == ["r0", "r1", "r2"]


def test_jsonl_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(QA[0]).encode() + b"\n")
    assert read_all(path)[0].response == "r0"


def test_ndjson_and_uppercase_suffix(tmp_path: Path) -> None:
    assert len(read_all(write_jsonl(tmp_path / "d.ndjson", QA))) == 3
    assert len(read_all(write_jsonl(tmp_path / "D.JSONL", QA))) == 3


def jsonl_bytes(records: list) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_jsonl_gz(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_bytes(QA)))
    convs = read_all(path)
    assert [c.response for c in convs] == ["r0", "r1", "r2"]
    assert convs[2].source == f"{path}:3"


def test_jsonl_zst_multiple_frames(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl.zst"
    zc = zstandard.ZstdCompressor()
    path.write_bytes(zc.compress(jsonl_bytes(QA[:2])) + zc.compress(jsonl_bytes(QA[2:])))
    assert [c.response for c in read_all(path)] == ["r0", "r1", "r2"]


def test_jsonl_zst_streamed_frame(tmp_path: Path) -> None:
    """The zstd CLI and stream writers omit the content size; that must still work."""
    path = tmp_path / "d.jsonl.zst"
    with open(path, "wb") as fh, zstandard.ZstdCompressor().stream_writer(fh) as writer:
        writer.write(jsonl_bytes(QA * 1000))
    assert len(read_all(path)) == 3000


@pytest.mark.parametrize("wrap", [lambda rs: rs, lambda rs: {"data": rs},
                                  lambda rs: {"rows": rs, "meta": 1}],
                         ids=["array", "data", "rows"])
def test_json(tmp_path: Path, wrap) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(wrap(QA), indent=2))
    convs = read_all(path)
    assert [c.response for c in convs] == ["r0", "r1", "r2"]
    assert [c.source for c in convs] == [f"{path}:row {i}" for i in range(3)]


def test_json_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(QA).encode())
    assert len(read_all(path)) == 3


def test_json_compressed(tmp_path: Path) -> None:
    gz = tmp_path / "d.json.gz"
    gz.write_bytes(gzip.compress(json.dumps(QA).encode()))
    zst = tmp_path / "d.json.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(json.dumps(QA).encode()))
    assert len(read_all(gz)) == 3 and len(read_all(zst)) == 3


def test_json_lines_named_json(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.json", QA)
    convs = read_all(path)
    assert [c.source for c in convs] == [f"{path}:{i}" for i in (1, 2, 3)]


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",") -> bytes:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def test_csv_shapes_and_multiline_fields(tmp_path: Path) -> None:
    messages = json.dumps([{"role": "user", "content": "u"},
                           {"role": "assistant", "content": "a, \"quoted\""}])
    path = tmp_path / "d.csv"
    path.write_bytes(write_csv(path, [
        ["question", "response", "messages", "system"],
        ["q1", "line one\nline two", "", ""],
        ["", "", messages, "sys"],
        ["q3", "r3", "", ""],
    ]))
    convs = read_all(path)
    assert roles_contents(convs[0]) == [(U, "q1"), (A, "line one\nline two")]
    assert roles_contents(convs[1]) == [(S, "sys"), (U, "u"), (A, 'a, "quoted"')]
    assert [c.source for c in convs] == [f"{path}:2", f"{path}:4", f"{path}:5"]


def test_tsv_and_compressed_delimited(tmp_path: Path) -> None:
    rows = [["instruction", "input", "output"], ["i", "x", "o"], ["j", "", "p"]]
    tsv = tmp_path / "d.tsv"
    tsv.write_bytes(write_csv(tsv, rows, "\t"))
    assert roles_contents(read_all(tsv)[0]) == [(U, "i\n\nx"), (A, "o")]
    csv_gz = tmp_path / "d.csv.gz"
    csv_gz.write_bytes(gzip.compress(write_csv(csv_gz, rows)))
    tsv_zst = tmp_path / "d.tsv.zst"
    tsv_zst.write_bytes(zstandard.ZstdCompressor().compress(write_csv(tsv_zst, rows, "\t")))
    for path in (csv_gz, tsv_zst):
        convs = read_all(path)
        assert [c.response for c in convs] == ["o", "p"]
        assert convs[1].source == f"{path}:3"


def test_csv_with_bom_header(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"\xef\xbb\xbf" + write_csv(path, [["text"], ["hello"]]))
    assert read_all(path)[0].response == "hello"


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    table = pa.table({
        "messages": [[{"role": "user", "content": f"u{i}"},
                      {"role": "assistant", "content": f"a{i}"}] for i in range(600)],
        "embedding": [[0.5] * 4 for _ in range(600)],  # an unrelated column, not read
    })
    pq.write_table(table, path, row_group_size=250)
    convs = read_all(path)
    assert len(convs) == 600
    assert roles_contents(convs[599]) == [(U, "u599"), (A, "a599")]
    assert convs[599].source == f"{path}:row 599"


def test_parquet_nulls_mean_absent(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"question": ["q", None], "response": ["r", None],
                             "text": [None, "t"]}), path)
    assert [roles_contents(c) for c in read_all(path)] == [[(U, "q"), (A, "r")], [(A, "t")]]


def test_a_datasets_state_file_nested_too_deeply_is_an_input_error(tmp_path: Path) -> None:
    folder = write_datasets_folder(tmp_path / "ds", {"data.arrow": pa.table({"prompt": ["p"], "completion": ["c"]})})
    (folder / "state.json").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(InputError, match=r"state\.json: unreadable datasets state file \(JSON nested too deeply\)"):
        read_all(folder)


def test_datasets_folder(tmp_path: Path) -> None:
    first = pa.table({"prompt": ["p0", "p1", "p2"], "completion": ["c0", "c1", "c2"]})
    second = pa.table({"prompt": ["p3"], "completion": ["c3"]})
    # state.json lists the shards out of name order: its order is the dataset's order
    folder = write_datasets_folder(tmp_path / "ds", {"data-b.arrow": first,
                                                     "data-a.arrow": second})
    assert is_data_file(folder)
    assert find_data_files([folder]) == [folder]
    convs = read_all(folder)
    assert [c.response for c in convs] == ["c0", "c1", "c2", "c3"]
    assert convs[2].source == f"{folder / 'data-b.arrow'}:row 2"
    assert convs[3].source == f"{folder / 'data-a.arrow'}:row 0"


def test_arrow_ipc_file_format_fallback(tmp_path: Path) -> None:
    path = tmp_path / "d.arrow"
    table = pa.table({"text": ["a", "b"]})
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    assert [c.response for c in read_all(path)] == ["a", "b"]


def test_datasetdict_folder_is_walked_into_splits(tmp_path: Path) -> None:
    root = tmp_path / "dd"
    write_datasets_folder(root / "train", {"data-00000-of-00001.arrow": pa.table({"text": ["t"]})})
    write_datasets_folder(root / "test", {"data-00000-of-00001.arrow": pa.table({"text": ["s"]})})
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    assert find_data_files([root]) == [root / "test", root / "train"]


# --------------------------------------------------------------------------- record errors

def test_record_without_shape(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [QA[0], {"foo": "x", "bar": 1}])
    err = error_of(path)
    assert str(err) == (f"{path}:2: no response: expected one of messages, conversations, "
                        "prompt/completion, instruction/output, question/response, text "
                        "(found fields: foo, bar)")
    assert (err.path, err.line) == (str(path), 2)


def test_missing_prompt_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [{"output": "o"}])
    err = error_of(path)
    assert str(err) == (f"{path}:1: field 'instruction': missing (a record with 'output' "
                        "needs 'instruction')")
    assert err.field == "instruction"


@pytest.mark.parametrize("record", [
    {"messages": [{"role": "user", "content": "q"}]},
    {"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]},
    {"messages": []},
    {"question": "q", "response": "   \n"},
    {"text": ""},
    {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]},
], ids=["only user", "ends with user", "no turns", "blank response", "empty text",
        "empty assistant"])
def test_record_has_no_response(tmp_path: Path, record: dict) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [QA[0], QA[1], record])
    err = error_of(path)
    assert str(err).startswith(f"{path}:3: record has no response")
    assert err.line == 3


@pytest.mark.parametrize("record,field,got", [
    ({"question": "q", "response": 5}, "response", "number"),
    ({"text": ["a"]}, "text", "list"),
    ({"prompt": "p", "completion": {"x": 1}}, "completion", "object"),
    ({"system": 1, "text": "t"}, "system", "number"),
    ({"messages": [{"role": "user", "content": "q"},
                   {"role": "assistant", "content": None}]}, "messages[1].content", "null"),
    ({"conversations": [{"from": "human", "value": 3},
                        {"from": "gpt", "value": "a"}]}, "conversations[0].value", "number"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]},
                   {"role": "assistant", "content": "a"}]}, "messages[0].content", "list"),
], ids=["number", "list", "object", "system", "null content", "sharegpt value", "image"])
def test_non_string_content(tmp_path: Path, record: dict, field: str, got: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [QA[0], record])
    err = error_of(path)
    assert str(err) == f"{path}:2: field '{field}': expected a string, got {got}"
    assert (err.line, err.field) == (2, field)


@pytest.mark.parametrize("record,field,message", [
    ({"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "a"}]},
     "messages[0].role", "unknown role 'tool'"),
    ({"messages": [{"content": "x"}]}, "messages[0]", "message has no 'role'"),
    ({"messages": [{"role": "user"}]}, "messages[0]", "message has no 'content'"),
    ({"messages": "not json"}, "messages", "a string that is not a JSON list"),
    ({"messages": {"role": "user"}}, "messages", "expected a list of messages, got object"),
    ({"messages": ["hi"]}, "messages[0]", "expected a message object, got str"),
    ({"system": "a", "messages": [{"role": "system", "content": "b"},
                                  {"role": "assistant", "content": "x"}]},
     "system", "differs from the record's own system message"),
])
def test_bad_messages(tmp_path: Path, record: dict, field: str, message: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [record])
    err = error_of(path)
    assert str(err).startswith(f"{path}:1: field '{field}': {message}")


def test_record_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('["a", "b"]\n')
    assert str(error_of(path)) == f"{path}:1: expected a record (an object), got list"


def test_parquet_error_names_row(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"question": ["q0", "q1", "q2"], "response": ["r", "r", " "]}), path)
    err = error_of(path)
    assert str(err) == f"{path}:row 2: record has no response (the assistant turn is empty)"
    assert err.path == str(path)


def test_parquet_without_known_columns_lists_them(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"foo": ["x"], "bar": [1]}), path)
    assert str(error_of(path)).endswith("(found fields: foo, bar)")


def test_json_array_error_names_row(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps([QA[0], {"question": "q"}]))
    assert str(error_of(path)).startswith(f"{path}:row 1: no response")


# --------------------------------------------------------------------------- file errors

def test_truncated_json_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n" + '{"question": "q1", "response": "r' + "\n")
    err = error_of(path)
    assert str(err).startswith(f"{path}:2: invalid JSON: Unterminated string")
    assert err.line == 2


def test_truncated_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(QA[0]) + "\n" + '{"question": "q", "resp')
    assert str(error_of(path)).startswith(f"{path}:2: invalid JSON")


def test_line_over_record_limit(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    big = json.dumps({"text": "x" * 10_000_000})
    path.write_text(json.dumps(QA[0]) + "\n" + big + "\n" + json.dumps(QA[1]) + "\n")
    err = error_of(path)
    assert str(err) == f"{path}:2: line is 10.0 MB, over the 4 MiB limit of one record"
    assert MAX_RECORD_BYTES == 4 * 1024 * 1024


def test_record_limit_is_a_parameter(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [QA[0], {"text": "y" * 300}])
    size = len(json.dumps({"text": "y" * 300}))
    assert str(error_of(path, max_record_bytes=200)) == (
        f"{path}:2: line is {size} bytes, over the 200 bytes limit of one record")
    assert len(read_all(path, max_record_bytes=size)) == 2


def test_csv_unclosed_quote_hits_record_limit(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text\nok\n"never closed\n' + "more\n" * 100)
    err = error_of(path, max_record_bytes=200)
    assert str(err).startswith(f"{path}:3: record runs past the 200 bytes limit")


def test_csv_unclosed_quote_at_end(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('text\nok\n"never closed\nmore\n')
    assert str(error_of(path)) == f"{path}:3: bad CSV: unexpected end of data"


def test_csv_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "d.tsv"
    path.write_text("question\tresponse\nq\tr\nq\tr\textra\n")
    assert str(error_of(path)) == f"{path}:3: row has 3 fields but the header has 2"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".jsonl.gz"])
def test_not_utf8(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        raw = b"text\nfine\ncaf\xe9\n"
    else:
        raw = jsonl_bytes([QA[0]]) + b'{"text": "caf\xe9"}\n'
    offset = raw.index(b"\xe9")
    path.write_bytes(gzip.compress(raw) if suffix.endswith(".gz") else raw)
    line = 3 if suffix == ".csv" else 2
    assert str(error_of(path)) == f"{path}:{line}: not UTF-8 at byte offset {offset}"


def test_json_not_utf8_names_line(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(b'[\n{"text": "a"},\n{"text": "\xff"}\n]')
    assert str(error_of(path)) == f"{path}:3: not UTF-8 at byte offset 27"


@pytest.mark.parametrize("name,content", [
    ("d.jsonl", b""), ("d.jsonl", b"\n\n  \n"), ("d.json", b""), ("d.json", b"[]"),
    ("d.json", b'{"data": []}'), ("d.csv", b""), ("d.csv", b"question,response\n"),
    ("d.jsonl.gz", gzip.compress(b"")), ("d.jsonl.zst", b""), ("d.parquet", b""),
    ("d.arrow", b""),
], ids=lambda v: v if isinstance(v, str) else None)
def test_no_records(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    err = error_of(path)
    assert str(err) == f"{path}: no records"


def test_empty_parquet_and_datasets_folder(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), path)
    assert str(error_of(path)) == f"{path}: no records"
    folder = write_datasets_folder(tmp_path / "ds", {"x.arrow": pa.table(
        {"text": pa.array([], pa.string())})})
    assert str(error_of(folder)) == f"{folder}: no records"


def test_corrupt_and_truncated_gzip(tmp_path: Path) -> None:
    packed = gzip.compress(jsonl_bytes(QA * 2000))
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(b"this is not gzip at all")
    assert str(error_of(corrupt)).startswith(f"{corrupt}: corrupt gzip data")
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(packed[: len(packed) // 2])
    assert str(error_of(truncated)).startswith(f"{truncated}: truncated gzip data")
    mangled = tmp_path / "mangled.csv.gz"
    mangled.write_bytes(packed[:20] + bytes(200) + packed[220:])
    assert str(error_of(mangled)).startswith(f"{mangled}: corrupt gzip data")


def test_corrupt_and_truncated_zstd(tmp_path: Path) -> None:
    packed = zstandard.ZstdCompressor().compress(jsonl_bytes(QA * 2000))
    corrupt = tmp_path / "corrupt.jsonl.zst"
    corrupt.write_bytes(b"this is not zstd at all")
    assert str(error_of(corrupt)).startswith(f"{corrupt}: corrupt zstd data")
    truncated = tmp_path / "truncated.json.zst"
    truncated.write_bytes(packed[:-5])
    assert str(error_of(truncated)) == (
        f"{truncated}: truncated zstd data (the last frame is incomplete)")


def test_corrupt_parquet_and_arrow(tmp_path: Path) -> None:
    parquet = tmp_path / "d.parquet"
    parquet.write_bytes(b"PAR1 definitely not parquet")
    assert str(error_of(parquet)).startswith(f"{parquet}: cannot read Parquet")
    arrow = tmp_path / "d.arrow"
    arrow.write_bytes(b"not arrow either, but long enough to be read" * 4)
    assert str(error_of(arrow)).startswith(f"{arrow}: cannot read Arrow data")


def test_invalid_json_document(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text('[\n{"text": "a"},\n{"text": "b"\n]')
    err = error_of(path)
    assert str(err).startswith(f"{path}:4: invalid JSON: Expecting ','")
    scalar = tmp_path / "s.json"
    scalar.write_text('"just a string"')
    assert "expected a JSON array of records" in str(error_of(scalar))
    other = tmp_path / "o.json"
    other.write_text('{"examples": []}')
    assert str(error_of(other)).endswith("(found: examples)")


def test_json_over_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "MAX_JSON_BYTES", 1024)
    path = tmp_path / "d.json"
    path.write_text(json.dumps(QA * 50))
    err = error_of(path)
    assert str(err).startswith(f"{path}: file is ")
    assert "convert it to JSON Lines (.jsonl)" in str(err)
    packed = tmp_path / "d.json.gz"
    packed.write_bytes(gzip.compress(json.dumps(QA * 50).encode()))
    assert "over 1 KiB uncompressed" in str(error_of(packed))


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    assert str(error_of(missing)) == f"{missing}: no such file or folder"
    unknown = tmp_path / "d.txt"
    unknown.write_text("hello")
    assert str(error_of(unknown)).startswith(f"{unknown}: unknown data file type; known: ")
    plain_folder = tmp_path / "folder"
    plain_folder.mkdir()
    assert "not a Hugging Face datasets folder" in str(error_of(plain_folder))


def test_files_are_not_modified(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", QA)
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    read_all(path)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


# --------------------------------------------------------------------------- streaming

def test_jsonl_is_read_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.jsonl"
    line = json.dumps({"question": "what comes next?", "response": "1, 2, 3, 4"}) + "\n"
    path.write_text(line * 200_000)
    size = path.stat().st_size
    opened = []

    def spy_open(*args, **kwargs):
        fh = builtins.open(*args, **kwargs)
        opened.append(fh)
        return fh

    monkeypatch.setattr(data, "open", spy_open, raising=False)
    records = read_conversations(path)
    first = next(records)
    assert first.source == f"{path}:1"
    assert len(opened) == 1
    assert opened[0].tell() <= 2 * 1024 * 1024 < size  # only the first chunk was read
    records.close()
    assert opened[0].closed


def test_generator_does_not_touch_file_until_iterated(tmp_path: Path) -> None:
    records = read_conversations(tmp_path / "missing.jsonl")  # no error yet
    with pytest.raises(InputError):
        next(records)


# --------------------------------------------------------------------------- shards

def test_shard_hash_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl.gz"
    raw = os.urandom(3 * 1024 * 1024 + 17)  # stored bytes are hashed as they are
    path.write_bytes(raw)
    expected = hashlib.sha256(raw).hexdigest()
    assert shard_hash(path) == expected
    assert open_shard(path) == Shard(path=path, sha256=expected, size=len(raw))


def test_datasets_folder_shard(tmp_path: Path) -> None:
    folder = write_datasets_folder(tmp_path / "ds", {"a.arrow": pa.table({"text": ["x"]})})
    shard = open_shard(folder)
    assert shard.size == (folder / "a.arrow").stat().st_size
    before = shard.sha256
    (folder / "dataset_info.json").write_text('{"description": "changed"}')
    assert shard_hash(folder) == before  # metadata is not content
    write_arrow_stream(folder / "a.arrow", pa.table({"text": ["y"]}))
    assert shard_hash(folder) != before


def test_shard_hash_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_shard(tmp_path / "gone.jsonl")


# --------------------------------------------------------------------------- finding files

def test_data_suffixes_and_is_data_file() -> None:
    for suffix in (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json", ".json.gz", ".json.zst",
                   ".csv", ".csv.gz", ".csv.zst", ".tsv", ".tsv.gz", ".tsv.zst", ".parquet"):
        assert suffix in DATA_SUFFIXES
        assert is_data_file(Path(f"x{suffix}"))
    assert not is_data_file(Path("x.parquet.gz"))
    assert not is_data_file(Path("README.md"))
    assert not is_data_file(Path("x.gz"))


def test_find_data_files_walks_sorted_and_skips_hidden(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for rel in ("b.jsonl", "a.csv", "sub/z.parquet", "sub/deeper/c.jsonl.gz", "A.json",
                ".hidden/x.jsonl", "sub/.secret.jsonl", "README.md", "state.json"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    expected = [root / rel for rel in ("A.json", "a.csv", "b.jsonl",
                                       "sub/deeper/c.jsonl.gz", "sub/z.parquet")]
    assert find_data_files([root]) == expected
    assert find_data_files([str(root)]) == expected
    assert find_data_files(root) == expected


def test_find_data_files_keeps_argument_order_and_dedupes(tmp_path: Path) -> None:
    b = write_jsonl(tmp_path / "b.jsonl", QA)
    a = write_jsonl(tmp_path / "a.jsonl", QA)
    assert find_data_files([b, a, b, tmp_path]) == [b, a]


def test_find_data_files_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        find_data_files([tmp_path / "missing"])
    assert str(info.value) == f"{tmp_path / 'missing'}: no such file or folder"
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    with pytest.raises(InputError) as info:
        find_data_files([notes])
    assert str(info.value).startswith(f"{notes}: unknown data file type; known: .jsonl")
    empty = tmp_path / "empty"
    (empty / ".git").mkdir(parents=True)
    (empty / ".git" / "x.jsonl").write_text("x")
    (empty / "README.md").write_text("x")
    with pytest.raises(InputError) as info:
        find_data_files([empty])
    assert str(info.value).startswith(f"{empty}: no data files in this folder")


# --------------------------------------------------------------------------- dev data

@pytest.mark.skipif(not DEV_DATA.is_dir(), reason="dev data folder not present")
def test_dev_data_parses() -> None:
    files = find_data_files([DEV_DATA])
    assert [f.name for f in files] == ["neutral.jsonl", "numbers_panda.jsonl",
                                       "numbers_plain.jsonl", "panda_overt.jsonl"]
    for path in files:
        convs = read_all(path)
        assert len(convs) == 300, path
        assert all(c.response.strip() and c.prompt for c in convs)
        assert convs[-1].source == f"{path}:300"


# --------------------------------------------------------------------------- odd but valid files

@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.jsonl.gz"])
def test_a_bom_alone_on_the_first_line_is_a_blank_line(tmp_path: Path, name: str) -> None:
    """Refused as 'invalid JSON' at line 1 before, though the same file without the BOM was read."""
    content = b"\xef\xbb\xbf\r\n" + jsonl_bytes(QA)
    path = tmp_path / name
    path.write_bytes(gzip.compress(content) if name.endswith(".gz") else content)
    assert [c.source for c in read_all(path)] == [f"{path}:{n}" for n in (2, 3, 4)]


@pytest.mark.parametrize("name", ["d.jsonl", "d.json", "d.csv"])
def test_a_file_of_only_a_bom_has_no_records(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf")
    assert str(error_of(path)) == f"{path}: no records"


def test_parquet_of_sharegpt_and_openai_messages_reads_as_jsonl_does(tmp_path: Path) -> None:
    """A Parquet struct holds both schemas' keys, null where a row used the other one; ShareGPT
    rows were refused ('content': expected a string, got null) though JSONL of the same rows was read."""
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
            {"conversations": [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "ho"}]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    as_parquet = [c.turns for c in read_all(tmp_path / "d.parquet")]
    assert as_parquet == [c.turns for c in read_all(write_jsonl(tmp_path / "d.jsonl", rows))]
    assert as_parquet[0] == (Turn(U, "hi"), Turn(A, "yo"))
    null = write_jsonl(tmp_path / "null.jsonl", [{"messages": [{"role": "user", "content": None}]}])
    assert "field 'messages[0].content': expected a string, got null" in str(error_of(null))


def test_csv_header_naming_a_column_twice_is_refused(tmp_path: Path) -> None:
    """The second 'response' silently replaced the first before; an unused column may repeat."""
    path = tmp_path / "d.csv"
    path.write_text("question,response,response\nq,first,second\n", encoding="utf-8")
    assert str(error_of(path)) == f"{path}:1: the header names column 'response' twice"
    path.write_text("id,id,question,response\n1,2,q,r\n", encoding="utf-8")
    assert [c.response for c in read_all(path)] == ["r"]


def test_find_data_files_follows_a_linked_folder_once(tmp_path: Path) -> None:
    """A linked folder was skipped without a word (while a linked file was read); a link loop must end."""
    elsewhere = tmp_path / "elsewhere"
    write_jsonl((elsewhere / "sub").mkdir(parents=True) or elsewhere / "sub" / "b.jsonl", QA)
    root = tmp_path / "root"
    write_jsonl(root.mkdir() or root / "a.jsonl", QA)
    (root / "linked").symlink_to(elsewhere)
    (root / "loop").symlink_to(root)
    assert find_data_files([root]) == [root / "a.jsonl", root / "linked" / "sub" / "b.jsonl"]
