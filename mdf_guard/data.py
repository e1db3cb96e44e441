"""Read fine-tuning datasets and normalise every record into a `Conversation`.

Everything downstream (signatures, caches, reports) sees only `Conversation`s and
`Shard`s, so this module is the one place that knows about file formats and record
shapes. Two rules shape the code:

* Stream. Datasets can be far larger than memory, so JSONL, CSV/TSV, Parquet and
  Arrow are read a chunk or a batch at a time, and one record is limited in size.
  Only JSON, which cannot be parsed incrementally, is loaded whole (up to a limit).
* Never guess silently. Bad input is an `InputError` that names the file, the line
  (JSONL/CSV, 1-based) or row (Parquet/Arrow/JSON array, 0-based like `dataset[N]`)
  and the field; no record is ever skipped and no traceback reaches the user.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import zstandard

from mdf_guard.errors import InputError

KiB = 1024
MiB = 1024 * KiB
MAX_RECORD_BYTES = 4 * MiB   # one JSONL line / CSV row; beyond this it is a broken file, not data
MAX_JSON_BYTES = 256 * MiB   # JSON is parsed whole, so it must fit comfortably in memory
_CHUNK_BYTES = 1 * MiB       # read size for raw and decompressed bytes
_ZSTD_INPUT_BYTES = 16 * KiB  # small inputs bound what one zstd call can expand to
_BATCH_ROWS = 256            # Parquet/Arrow rows turned into Python objects at a time
_MISSING = object()          # "no value", where None is a value


@dataclass(frozen=True, slots=True)
class Turn:
    """One message; `role` is always "system", "user" or "assistant"."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class Conversation:
    """A normalised record: the last turn is the assistant response fine-tuning learns."""

    turns: tuple[Turn, ...]
    source: str  # "path:line" or "path:row N", for messages that point at the record

    @property
    def prompt(self) -> tuple[Turn, ...]:
        """Everything the model is conditioned on."""
        return self.turns[:-1]

    @property
    def response(self) -> str:
        """The text the model would be trained to produce."""
        return self.turns[-1].content


_LINE_SOURCE = re.compile(r":(\d+)$")
_ROW_SOURCE = re.compile(r":row (\d+)$")
PREVIEW_CHARS = 240


def source_location(source: str) -> tuple[str, int | None]:
    """(path, 1-based line) of a `Conversation.source`; the line is None for a Parquet or Arrow row."""
    if (m := _ROW_SOURCE.search(source)) is not None:
        return source[: m.start()], None
    if (m := _LINE_SOURCE.search(source)) is not None:
        return source[: m.start()], int(m.group(1))
    return source, None


def response_preview(conversation: Conversation, chars: int = PREVIEW_CHARS) -> str:
    """The response on one line, clipped to `chars`: what a report shows of a row."""
    text = " ".join(conversation.response.split())
    return text if len(text) <= chars else text[: chars - 1] + "\u2026"


@dataclass(frozen=True, slots=True)
class Shard:
    """One data source and its content hash, the key of every cache entry."""

    path: Path
    sha256: str
    size: int


# --------------------------------------------------------------------------- formats

_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv",
            ".tsv": "tsv", ".parquet": "parquet", ".arrow": "arrow"}
_COMPRESSIBLE = (".jsonl", ".ndjson", ".json", ".csv", ".tsv")
_COMPRESSIONS = (".gz", ".zst")
DATA_SUFFIXES: tuple[str, ...] = tuple(_FORMATS) + tuple(
    base + comp for base in _COMPRESSIBLE for comp in _COMPRESSIONS)

# Metadata that Hugging Face tooling writes next to data; never records.
_METADATA_NAMES = frozenset({"dataset_info.json", "dataset_infos.json", "state.json",
                             "dataset_dict.json"})


def _format_of(path: Path) -> tuple[str, str | None] | None:
    """(format, compression suffix or None) from the file name, case-insensitively."""
    name = path.name.lower()
    for suffix in sorted(DATA_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            compression = next((c for c in _COMPRESSIONS if suffix.endswith(c)), None)
            base = suffix[: -len(compression)] if compression else suffix
            return _FORMATS[base], compression
    return None


def _is_datasets_folder(path: Path) -> bool:
    """A `datasets` save_to_disk folder: metadata plus Arrow files, read as one source."""
    return (path.is_dir()
            and ((path / "state.json").is_file() or (path / "dataset_info.json").is_file())
            and any(path.glob("*.arrow")))


def is_data_file(path: Path) -> bool:
    """True for a name with a known data suffix, or for a `datasets` folder."""
    path = Path(path)
    return _format_of(path) is not None or _is_datasets_folder(path)


def _known_suffixes() -> str:
    return ", ".join(DATA_SUFFIXES)


# --------------------------------------------------------------------------- shards

def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _arrow_files(folder: Path) -> list[Path]:
    """The folder's Arrow files in dataset order: state.json's list, else sorted names."""
    state = folder / "state.json"
    if state.is_file():
        try:
            listed = json.loads(state.read_text(encoding="utf-8")).get("_data_files") or []
            files = [folder / item["filename"] for item in listed]
        except (ValueError, TypeError, KeyError, AttributeError, OSError) as err:
            raise InputError(state, f"unreadable datasets state file ({err})") from None
        except RecursionError:
            raise InputError(state, "unreadable datasets state file (JSON nested too deeply)") from None
        if files:
            return files
    return sorted(folder.glob("*.arrow"))


def shard_hash(path: Path) -> str:
    """sha256 of the raw bytes as stored (compressed or not), read in 1 MiB chunks.

    A `datasets` folder hashes a manifest of its Arrow files (name and sha256 of each,
    in order), so renaming metadata or re-saving identical data keeps the key.
    """
    path = Path(path)
    try:
        if path.is_dir():
            manifest = "".join(f"{f.name}\t{_file_sha256(f)}\n" for f in _arrow_files(path))
            return hashlib.sha256(manifest.encode("utf-8")).hexdigest()
        return _file_sha256(path)
    except FileNotFoundError:
        raise InputError(path, "no such file or folder") from None
    except OSError as err:
        raise InputError(path, f"cannot read: {err.strerror or err}") from None


def open_shard(path: Path) -> Shard:
    """Hash and size one data source (a file, or a `datasets` folder)."""
    path = Path(path)
    digest = shard_hash(path)
    if path.is_dir():
        size = sum(f.stat().st_size for f in _arrow_files(path))
    else:
        size = path.stat().st_size
    return Shard(path=path, sha256=digest, size=size)


# --------------------------------------------------------------------------- finding files

def find_data_files(paths: Iterable[Path | str]) -> list[Path]:
    """Expand the user's arguments into data sources, in a deterministic order.

    Files are taken as given (so a typo in an extension is an error, not a skip);
    folders are walked; the same file named twice is returned once, so that no
    record is counted twice.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    seen: set[Path] = set()
    for raw in paths:
        for item in _expand(Path(raw)):
            key = item.resolve()
            if key not in seen:
                seen.add(key)
                found.append(item)
    return found


def _expand(path: Path) -> list[Path]:
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if _is_datasets_folder(path):
        return [path]
    if path.is_dir():
        files = _walk(path)
        if not files:
            raise InputError(path, "no data files in this folder (looked for "
                             f"{_known_suffixes()} and Hugging Face datasets folders)")
        return files
    if _format_of(path) is None:
        raise InputError(path, f"unknown data file type; known: {_known_suffixes()}")
    return [path]


def _walk(root: Path) -> list[Path]:
    """Data files and `datasets` folders under root, skipping hidden entries.

    Linked folders are followed, as linked files are read (each real folder once, so
    a link loop ends): skipping them would leave their data out without a word.
    """
    found: list[Path] = []
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        real = os.path.realpath(here)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        keep = []
        for name in sorted(dirnames):
            if name.startswith("."):
                continue
            if _is_datasets_folder(here / name):
                found.append(here / name)   # one source; do not list its Arrow files
            else:
                keep.append(name)
        dirnames[:] = keep
        for name in filenames:
            if (not name.startswith(".") and name not in _METADATA_NAMES
                    and _format_of(Path(name)) is not None):
                found.append(here / name)
    return sorted(found, key=lambda p: p.relative_to(root).parts)


# --------------------------------------------------------------------------- reading

def read_conversations(path: Path,
                       max_record_bytes: int = MAX_RECORD_BYTES) -> Iterator[Conversation]:
    """Yield the records of one data source as `Conversation`s, lazily and in order.

    Raises `InputError` (while iterating) for any problem, including a source with
    no records at all, which is far more likely a mistake than an intent.
    """
    path = Path(path)
    count = 0
    for conversation in _read_any(path, max_record_bytes):
        count += 1
        yield conversation
    if count == 0:
        raise InputError(path, "no records")


def _read_any(path: Path, max_record_bytes: int) -> Iterator[Conversation]:
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        if not _is_datasets_folder(path):
            raise InputError(path, "a folder, but not a Hugging Face datasets folder "
                             "(state.json or dataset_info.json with *.arrow files)")
        for arrow in _arrow_files(path):
            yield from _read_arrow(arrow)
        return
    detected = _format_of(path)
    if detected is None:
        raise InputError(path, f"unknown data file type; known: {_known_suffixes()}")
    if path.stat().st_size == 0:
        return
    fmt, compression = detected
    if fmt == "jsonl":
        yield from _read_jsonl(path, compression, max_record_bytes)
    elif fmt == "json":
        yield from _read_json(path, compression, max_record_bytes)
    elif fmt in ("csv", "tsv"):
        yield from _read_delimited(path, compression, "," if fmt == "csv" else "\t",
                                   max_record_bytes)
    elif fmt == "parquet":
        yield from _read_parquet(path)
    else:
        yield from _read_arrow(path)


# ---- bytes and lines

def _byte_chunks(path: Path, compression: str | None) -> Iterator[bytes]:
    """The file's (decompressed) bytes in chunks; read and codec errors become InputError."""
    what = {".gz": "gzip", ".zst": "zstd"}.get(compression or "", "file")
    try:
        with open(path, "rb") as fh:
            if compression == ".gz":
                with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                    while chunk := gz.read(_CHUNK_BYTES):
                        yield chunk
            elif compression == ".zst":
                yield from _zstd_chunks(fh, path)
            else:
                while chunk := fh.read(_CHUNK_BYTES):
                    yield chunk
    except EOFError as err:
        raise InputError(path, f"truncated {what} data ({err})") from None
    except (zlib.error, zstandard.ZstdError, gzip.BadGzipFile) as err:
        raise InputError(path, f"corrupt {what} data ({err})") from None
    except OSError as err:
        raise InputError(path, f"cannot read {what}: {err.strerror or err}") from None


def _zstd_chunks(fh: BinaryIO, path: Path) -> Iterator[bytes]:
    """Decompress all zstd frames, and notice truncation (the stream reader does not)."""
    decompressor = zstandard.ZstdDecompressor()
    dobj, mid_frame = decompressor.decompressobj(), False
    while data := fh.read(_ZSTD_INPUT_BYTES):
        while data:
            mid_frame = True
            out = dobj.decompress(data)
            if out:
                yield out
            data = b""
            if dobj.eof:  # frame done: anything left over starts the next frame
                data, dobj, mid_frame = dobj.unused_data, decompressor.decompressobj(), False
    if mid_frame:
        raise InputError(path, "truncated zstd data (the last frame is incomplete)")


def _size(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} MB"
    if n >= 1_000:
        return f"{n / 1e3:.1f} kB"
    return f"{n} bytes"


def _limit(n: int) -> str:
    if n % MiB == 0:
        return f"{n // MiB} MiB"
    if n % KiB == 0:
        return f"{n // KiB} KiB"
    return f"{n} bytes"


def _too_long(path: Path, line: int, size: int, max_bytes: int) -> InputError:
    return InputError(path, f"line is {_size(size)}, over the {_limit(max_bytes)} limit "
                      "of one record", line=line)


def _lines(chunks: Iterable[bytes], path: Path,
           max_bytes: int) -> Iterator[tuple[int, int, bytes]]:
    """Yield (line number, byte offset, line without "\\n"), holding at most one line.

    An over-long line is measured to its end without being kept, so the error can
    say how long it is.
    """
    buf, size, lineno, offset = bytearray(), 0, 1, 0
    for chunk in chunks:
        pos = 0
        while (nl := chunk.find(b"\n", pos)) >= 0:
            size += nl - pos
            if size > max_bytes:
                raise _too_long(path, lineno, size, max_bytes)
            buf += chunk[pos:nl]
            yield lineno, offset, bytes(buf)
            offset += size + 1
            buf.clear()
            size, lineno, pos = 0, lineno + 1, nl + 1
        size += len(chunk) - pos
        if size <= max_bytes:
            buf += chunk[pos:]
        else:
            buf.clear()
    if size > max_bytes:
        raise _too_long(path, lineno, size, max_bytes)
    if size:
        yield lineno, offset, bytes(buf)


def _decode(raw: bytes, path: Path, lineno: int, offset: int) -> str:
    """Strict UTF-8 (a wrong encoding would silently change the text we measure)."""
    if offset == 0 and raw.startswith(codecs.BOM_UTF8):
        raw, offset = raw[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(path, f"not UTF-8 at byte offset {offset + err.start}",
                         line=lineno) from None


# ---- JSONL

def _read_jsonl(path: Path, compression: str | None,
                max_record_bytes: int) -> Iterator[Conversation]:
    for lineno, offset, raw in _lines(_byte_chunks(path, compression), path,
                                      max_record_bytes):
        if not (raw.removeprefix(codecs.BOM_UTF8) if offset == 0 else raw).strip():
            continue   # blank, or a BOM alone on the first line
        text = _decode(raw, path, lineno, offset)
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise InputError(path, f"invalid JSON: {err.msg} (column {err.colno})",
                             line=lineno) from None
        except RecursionError:
            raise InputError(path, "invalid JSON: nested too deeply", line=lineno) from None
        yield _to_conversation(record, path, lineno)


# ---- JSON

def _read_json(path: Path, compression: str | None,
               max_record_bytes: int) -> Iterator[Conversation]:
    """A top-level array, or {"data"|"rows": [...]}; JSON Lines named .json also work."""
    document = _parse_json(path, compression)
    if document is _JSON_LINES:
        yield from _read_jsonl(path, compression, max_record_bytes)
        return
    if document is _MISSING:
        return
    for index, record in enumerate(_json_records(document, path)):
        yield _to_conversation(record, path, f"row {index}")


_JSON_LINES = object()


def _parse_json(path: Path, compression: str | None) -> Any:
    """The parsed document, `_MISSING` for a blank file, or `_JSON_LINES` for several
    objects one after another (JSON Lines under a .json name, common on the Hub)."""
    data = _read_whole(path, compression)
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    if not data[start:].strip():
        return _MISSING
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as err:
        offset = start + err.start
        line = data.count(b"\n", 0, offset) + 1
        raise InputError(path, f"not UTF-8 at byte offset {offset}", line=line) from None
    del data
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data" and text.lstrip().startswith("{"):
            return _JSON_LINES
        raise InputError(path, f"invalid JSON: {err.msg} (column {err.colno})",
                         line=err.lineno) from None
    except RecursionError:
        raise InputError(path, "invalid JSON: nested too deeply") from None


def _read_whole(path: Path, compression: str | None) -> bytes:
    advice = ("JSON is parsed whole, so files over "
              f"{_limit(MAX_JSON_BYTES)} are refused; convert it to JSON Lines (.jsonl)")
    if compression is None and path.stat().st_size > MAX_JSON_BYTES:
        raise InputError(path, f"file is {_size(path.stat().st_size)}; {advice}")
    parts, total = [], 0
    for chunk in _byte_chunks(path, compression):
        total += len(chunk)
        if total > MAX_JSON_BYTES:
            raise InputError(path, f"over {_limit(MAX_JSON_BYTES)} uncompressed; {advice}")
        parts.append(chunk)
    return b"".join(parts)


def _json_records(document: Any, path: Path) -> list:
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        for key in ("data", "rows"):
            if isinstance(document.get(key), list):
                return document[key]
        found = ", ".join(map(str, document)) or "none"
    else:
        found = f"a {_type_name(document)}"
    raise InputError(path, "expected a JSON array of records or an object with a "
                     f"'data' or 'rows' array (found: {found})")


# ---- CSV / TSV

def _read_delimited(path: Path, compression: str | None, delimiter: str,
                    max_record_bytes: int) -> Iterator[Conversation]:
    """Header row gives field names; empty cells count as absent fields.

    The csv module reads from a generator of our lines, so the limit on one record and
    the record's first line number hold even for quoted fields that span lines.
    """
    csv.field_size_limit(max(csv.field_size_limit(), max_record_bytes))
    state = {"first": 1, "last": 0, "bytes": 0}

    def feed() -> Iterator[str]:
        for lineno, offset, raw in _lines(_byte_chunks(path, compression), path,
                                          max_record_bytes):
            state["last"] = lineno
            state["bytes"] += len(raw) + 1
            if state["bytes"] > max_record_bytes + 1:
                raise InputError(path, f"record runs past the {_limit(max_record_bytes)} "
                                 f"limit of one record at line {lineno} (an unclosed "
                                 "quote?)", line=state["first"])
            yield _decode(raw, path, lineno, offset) + "\n"

    reader = csv.reader(feed(), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise InputError(path, f"bad {'CSV' if delimiter == ',' else 'TSV'}: {err}",
                             line=state["first"]) from None
        line = state["first"]
        state.update(first=state["last"] + 1, bytes=0)
        if not row:
            continue
        if header is None:
            header = [name.strip() for name in row]
            twice = next((n for i, n in enumerate(header) if n in _KNOWN_FIELDS and n in header[:i]), None)
            if twice is not None:   # one would silently replace the other
                raise InputError(path, f"the header names column '{twice}' twice", line=line)
            continue
        if len(row) != len(header):
            raise InputError(path, f"row has {len(row)} fields but the header has "
                             f"{len(header)}", line=line)
        record = {name: value for name, value in zip(header, row) if value != ""}
        yield _to_conversation(record, path, line)


# ---- Parquet / Arrow

_KNOWN_FIELDS = ("messages", "conversations", "prompt", "completion", "instruction",
                 "input", "context", "output", "question", "response", "answer", "text",
                 "system")


def _columns(names: list[str]) -> list[str] | None:
    """Only the columns a shape can use (others may be huge, e.g. embeddings);
    all of them when none is known, so the shape error can list what was found."""
    known = [name for name in names if name in _KNOWN_FIELDS]
    return known or None


def _read_parquet(path: Path) -> Iterator[Conversation]:
    try:
        parquet = pq.ParquetFile(path)
        batches = parquet.iter_batches(batch_size=_BATCH_ROWS,
                                       columns=_columns(parquet.schema_arrow.names))
        yield from _batch_conversations(batches, path)
    except (pa.ArrowException, OSError) as err:
        raise InputError(path, f"cannot read Parquet: {err}") from None


def _read_arrow(path: Path) -> Iterator[Conversation]:
    """An Arrow IPC stream (what `datasets` writes), else an Arrow IPC file."""
    try:
        with pa.memory_map(str(path), "r") as source:
            try:
                reader = pa.ipc.open_stream(source)
                batches: Iterable[pa.RecordBatch] = reader
            except pa.ArrowInvalid:
                source.seek(0)
                file_reader = pa.ipc.open_file(source)
                batches = (file_reader.get_batch(i)
                           for i in range(file_reader.num_record_batches))
            yield from _batch_conversations(_sliced(batches), path)
    except (pa.ArrowException, OSError) as err:
        raise InputError(path, f"cannot read Arrow data: {err}") from None


def _sliced(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Arrow batches can be arbitrarily large; cut them and keep the useful columns."""
    for batch in batches:
        columns = _columns(batch.schema.names)
        if columns:
            batch = batch.select(columns)
        for start in range(0, batch.num_rows, _BATCH_ROWS):
            yield batch.slice(start, _BATCH_ROWS)


def _batch_conversations(batches: Iterable[pa.RecordBatch],
                         path: Path) -> Iterator[Conversation]:
    index = 0
    for batch in batches:
        for record in batch.to_pylist():
            yield _to_conversation(record, path, f"row {index}")
            index += 1


# --------------------------------------------------------------------------- records

_ROLES = {"system": "system", "developer": "system",
          "user": "user", "human": "user",
          "assistant": "assistant", "gpt": "assistant", "model": "assistant",
          "chatgpt": "assistant"}

# response field -> the prompt fields it pairs with, in order of preference
_PAIRS = (("completion", ("prompt",)),
          ("output", ("instruction",)),
          ("response", ("question", "instruction", "prompt")),
          ("answer", ("question", "prompt")))

_SHAPES = ("messages, conversations, prompt/completion, instruction/output, "
           "question/response, text")


def _where_error(path: Path, where: int | str, message: str,
                 field: str | None = None) -> InputError:
    """An InputError at a line (int) or a row ("row N"), with `path` kept exact."""
    if isinstance(where, int):
        return InputError(path, message, line=where, field=field)
    err = InputError(f"{path}:{where}", message, field=field)
    err.path = str(path)
    return err


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _string(value: Any, field: str, path: Path, where: int | str) -> str:
    if isinstance(value, str):
        return value
    raise _where_error(path, where, f"expected a string, got {_type_name(value)}", field)


def _to_conversation(record: Any, path: Path, where: int | str) -> Conversation:
    """Normalise one record of any recognised shape; `where` is a line or "row N"."""
    if not isinstance(record, dict):
        raise _where_error(path, where, f"expected a record (an object), got "
                           f"{_type_name(record)}")
    fields = {key: value for key, value in record.items() if value is not None}
    turns = _shape_turns(fields, path, where)
    turns = _with_system(fields, turns, path, where)
    if not turns or turns[-1].role != "assistant":
        last = f"the last turn is from the {turns[-1].role}" if turns else "no turns"
        raise _where_error(path, where, f"record has no response ({last})")
    if not turns[-1].content.strip():
        raise _where_error(path, where, "record has no response (the assistant turn is empty)")
    return Conversation(turns=tuple(turns), source=f"{path}:{where}")


def _shape_turns(fields: dict, path: Path, where: int | str) -> list[Turn]:
    """Pick the shape by its response field, first match wins (chat data often also
    carries a pre-formatted `text`, which must not override the real turns)."""
    for key in ("messages", "conversations"):
        if key in fields:
            return _chat_turns(fields[key], key, path, where)
    for response_key, prompt_keys in _PAIRS:
        if response_key in fields:
            prompt_key = next((k for k in prompt_keys if k in fields), None)
            if prompt_key is None:
                needs = " or ".join(f"'{k}'" for k in prompt_keys)
                raise _where_error(path, where, f"missing (a record with '{response_key}' "
                                   f"needs {needs})", prompt_keys[0])
            return (_prompt_turns(fields, prompt_key, path, where)
                    + _response_turns(fields[response_key], response_key, path, where))
    if "text" in fields:
        return [Turn("assistant", _string(fields["text"], "text", path, where))]
    found = ", ".join(map(str, fields)) or "none"
    raise _where_error(path, where, f"no response: expected one of {_SHAPES} "
                       f"(found fields: {found})")


def _prompt_turns(fields: dict, key: str, path: Path, where: int | str) -> list[Turn]:
    value = fields[key]
    if key == "prompt" and not isinstance(value, str):
        return _chat_turns(value, key, path, where)
    text = _string(value, key, path, where)
    if key == "instruction":  # Alpaca's input (Dolly calls it context) follows it
        extra_key = next((k for k in ("input", "context") if k in fields), None)
        if extra_key is not None:
            extra = _string(fields[extra_key], extra_key, path, where)
            if extra.strip():
                text = f"{text}\n\n{extra}"
    return [Turn("user", text)] if text.strip() else []


def _response_turns(value: Any, key: str, path: Path, where: int | str) -> list[Turn]:
    if key == "completion" and isinstance(value, list):  # TRL's conversational form
        return _chat_turns(value, key, path, where)
    return [Turn("assistant", _string(value, key, path, where))]


def _chat_turns(value: Any, field: str, path: Path, where: int | str) -> list[Turn]:
    """OpenAI (role/content) or ShareGPT (from/value) messages; a JSON string (as CSV
    cells and some Parquet files hold them) is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise _where_error(path, where, "a string that is not a JSON list of messages",
                               field) from None
    if not isinstance(value, (list, tuple)):
        raise _where_error(path, where, f"expected a list of messages, got "
                           f"{_type_name(value)}", field)
    return [_turn(item, field, i, path, where) for i, item in enumerate(value)]


def _turn(item: Any, field: str, index: int, path: Path, where: int | str) -> Turn:
    """One message; the field name for errors is built only when there is an error."""
    if not isinstance(item, dict):
        raise _where_error(path, where, f"expected a message object, got "
                           f"{_type_name(item)}", f"{field}[{index}]")
    role_key = "role" if item.get("role") is not None else "from"
    # a Parquet struct of both schemas holds nulls for the other one's keys
    content_key = "content" if item.get("content") is not None or item.get("value") is None else "value"
    raw_role, content = item.get(role_key), item.get(content_key, _MISSING)
    if raw_role is None:
        raise _where_error(path, where, "message has no 'role' (or ShareGPT 'from')",
                           f"{field}[{index}]")
    if content is _MISSING:
        raise _where_error(path, where, "message has no 'content' (or ShareGPT 'value')",
                           f"{field}[{index}]")
    role = _ROLES.get(raw_role) or (
        _ROLES.get(raw_role.lower()) if isinstance(raw_role, str) else None)
    if role is None:
        raise _where_error(path, where, f"unknown role {raw_role!r} (expected system, "
                           "user, assistant, or ShareGPT's human, gpt)",
                           f"{field}[{index}].{role_key}")
    if not isinstance(content, str):
        content = _content(content, f"{field}[{index}].{content_key}", path, where)
    return Turn(role, content)


def _content(value: Any, field: str, path: Path, where: int | str) -> str:
    """OpenAI's list of text parts (joined); anything else is an error, because
    silently dropping an image or a tool call would change what we measure."""
    if isinstance(value, list) and value and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in value):
        return "".join(p["text"] for p in value)
    return _string(value, field, path, where)


def _with_system(fields: dict, turns: list[Turn], path: Path,
                 where: int | str) -> list[Turn]:
    """A `system` field becomes the first turn, unless the same system turn is there."""
    if "system" not in fields:
        return turns
    system = _string(fields["system"], "system", path, where)
    if not system.strip():
        return turns
    if turns and turns[0].role == "system":
        if turns[0].content == system:
            return turns
        raise _where_error(path, where, "differs from the record's own system message",
                           "system")
    return [Turn("system", system)] + turns
