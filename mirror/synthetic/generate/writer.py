"""Serialisation of generated chunks: INSEE's CSV dialect streamed into a ZIP member, and Parquet.

CSV dialect (as in INSEE's published stock files): `,` separator, a field is double-quoted only
when it holds `,`, `"` or a line break (`"` doubled inside), empty string for null, LF line ends,
UTF-8, one header row. A backslash is an ordinary character (`\\,` stays as is, inside quotes).
"""

from __future__ import annotations

import queue
import threading
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mirror.core.schema import StockFile, insee_parquet_type

QUOTE = pa.scalar('"', pa.string())
_NEEDS_QUOTES = '[",\n\r]'


def quote_needed(arr: pa.Array) -> pa.Array:
    """RFC 4180 quoting, only for the values that need it."""
    needs = pc.match_substring_regex(arr, _NEEDS_QUOTES)
    if not pc.any(needs).as_py():
        return arr
    quoted = pc.binary_join_element_wise(QUOTE, pc.replace_substring(arr, '"', '""'), QUOTE, "")
    return pc.if_else(needs, quoted, arr)


# Only free-text columns can hold a comma or a quote; codes, dates, numbers and flags never do.
_TEXT_MARKERS = ("nom", "prenom", "denomination", "sigle", "pseudonyme", "enseigne", "libelle", "complement",
                 "distribution")  # fmt: skip


def may_need_quotes(column: str) -> bool:
    low = column.lower()
    return any(marker in low for marker in _TEXT_MARKERS)


def csv_bytes(columns: dict[str, pa.Array], header: list[str], delimiter: str = ",") -> memoryview:
    """The CSV lines (no header) of one chunk, zero-copy over the Arrow buffer."""
    if len(columns[header[0]]) == 0:
        return memoryview(b"")
    arrays = [quote_needed(columns[name]) if may_need_quotes(name) else columns[name] for name in header]
    lines = pc.binary_join_element_wise(*arrays, delimiter)
    lines = pc.binary_join_element_wise(lines, pa.scalar(""), "\n")  # each line + "\n"
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    return memoryview(lines.buffers()[2])[int(offsets[0]) : int(offsets[-1])]


def header_line(header: list[str], delimiter: str = ",") -> bytes:
    return (delimiter.join(header) + "\n").encode()


class ZipCsvSink:
    """One CSV member streamed into a ZIP (deflate, low level for speed, fixed timestamp)."""

    def __init__(self, path, stock_file: StockFile, header: list[str], date_time: tuple, level: int = 1):
        self.header = header
        self.zf = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True)
        info = zipfile.ZipInfo(stock_file.csv_member, date_time=date_time)
        info.compress_type = zipfile.ZIP_DEFLATED
        info._compresslevel = level  # (a property over compress_level since 3.13)
        info.external_attr = 0o644 << 16
        self.fh = self.zf.open(info, "w", force_zip64=True)
        self.fh.write(header_line(header, stock_file.delimiter))

    def write(self, data: bytes) -> None:
        if data:
            self.fh.write(data)

    def close(self) -> None:
        self.fh.close()
        self.zf.close()


def to_parquet_table(table: str, columns: dict[str, pa.Array], header: list[str]) -> pa.Table:
    """Typed like INSEE's Parquet files: VARCHAR except the columns of `insee_parquet_type`; empty -> NULL."""
    arrays = []
    fields = []
    for name in header:
        arr = columns[name]
        arr = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
        kind = insee_parquet_type(table, name)
        if kind == "DATE":
            arr, typ = arr.cast(pa.date32()), pa.date32()
        elif kind == "BIGINT":
            arr, typ = arr.cast(pa.int64()), pa.int64()
        elif kind == "BOOLEAN":
            arr, typ = arr.cast(pa.bool_()), pa.bool_()
        elif kind == "TIMESTAMP":
            arr, typ = arr.cast(pa.timestamp("us")), pa.timestamp("us")
        else:
            typ = pa.string()
        arrays.append(arr)
        fields.append(pa.field(name, typ))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def parquet_schema(table: str, header: list[str]) -> pa.Schema:
    types = {
        "DATE": pa.date32(),
        "BIGINT": pa.int64(),
        "BOOLEAN": pa.bool_(),
        "TIMESTAMP": pa.timestamp("us"),
    }
    return pa.schema([pa.field(n, types.get(insee_parquet_type(table, n), pa.string())) for n in header])


class ParquetSink:
    def __init__(self, path, table: str, header: list[str]):
        self.table, self.header = table, header
        self.writer = pq.ParquetWriter(path, parquet_schema(table, header), compression="zstd")

    def write_table(self, t: pa.Table) -> None:
        if t.num_rows:
            self.writer.write_table(t)

    def close(self) -> None:
        self.writer.close()


class BackgroundWriter:
    """Runs sink writes (zlib / zstd release the GIL) in one thread while the next chunk is generated."""

    def __init__(self, depth: int = 6):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is not None:
                continue
            fn, arg = item
            try:
                fn(arg)
            except BaseException as exc:  # reported to the producer
                self.error = exc

    def submit(self, fn, arg) -> None:
        if self.error is not None:
            raise self.error
        self.q.put((fn, arg))

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
