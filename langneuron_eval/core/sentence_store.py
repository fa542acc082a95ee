"""Per-sentence mean activations streamed to disk, in a file that readers memory-map.

Kojima et al.'s average precision needs every sentence's mean activation of every unit: ``[S, L, N]``
values, 1.4 MB per sentence for Llama-2-7B in float32 and 9.2 MB for a 70B model. Held in RAM and
rewritten at every checkpoint, they grow memory with the corpus and written bytes with its square.
Here each row ``[L, N]`` is written once, where it belongs, as soon as a batch produces it:

* **File** (``*.sentences.safetensors``): a valid safetensors file with one tensor, ``sentence_means``
  ``[S, L, N]`` in float32, float16 or bfloat16, row-major, so any safetensors reader opens it. Its JSON
  header is padded with spaces to a fixed size (:data:`HEADER_BYTES`), so the data start at a fixed,
  page-aligned offset and the header (which holds ``S``) can be rewritten in place while rows are
  appended. ``__metadata__["langneuron"]`` holds JSON: schema, version, storage dtype, the count of
  non-finite values written and the caller's metadata.
* **Shards**: every process writes its own shard. The recorder *reserves* a segment of rows for each
  chunk of sentences it runs (``first`` corpus index, ``count``) and rows land at their sentence's place
  in the segment, whatever order the length-sorted batches produce them in; rows never written (empty
  texts) read as zeros, as they did in memory. A checkpoint fsyncs the shard and returns its
  :class:`StoreState`; a resumed writer truncates the shard to that state's row count.
* **Finalize**: the segments of all shards are laid out in corpus order. With one writer they already
  are, and the shard is renamed into place (no copy: bytes written = the rows once). With several the
  segments are copied into one file in the kernel (``copy_file_range``) -- twice the rows' bytes, still
  linear in the corpus. Either way the same rows give the same bytes.
* **Reading**: :class:`SentenceMeansFile` yields ``[S, units]`` float32 blocks of a contiguous unit range
  through a ``np.memmap`` that is unmapped after each block, so the process's resident memory holds one
  block, not the file. :class:`TensorSentenceMeans` gives the same interface to an in-memory tensor
  (statistics files that hold their sentence means inline).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import atomic_path, canonical_json, sha256_file

SCHEMA = "langneuron-eval/sentence-means"
SCHEMA_VERSION = 1
TENSOR = "sentence_means"
HEADER_BYTES = 16384  # 8-byte length + padded JSON; data start here (page-aligned for mmap)
_COPY_BLOCK = 64 << 20  # bytes per copy step when copy_file_range is unavailable
MAP_BYTES = 64 << 20  # bytes of rows mapped at a time when reading: bounds the resident file pages


@dataclass(frozen=True)
class StorageDType:
    """How one storage dtype is written (torch), named in safetensors, and read back (numpy)."""

    name: str
    torch_dtype: torch.dtype
    safetensors: str
    numpy: np.dtype  # numpy has no bfloat16: its raw bits are read as uint16 and widened exactly

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize


STORAGE_DTYPES = {d.name: d for d in (
    StorageDType("float32", torch.float32, "F32", np.dtype("<f4")),
    StorageDType("float16", torch.float16, "F16", np.dtype("<f2")),
    StorageDType("bfloat16", torch.bfloat16, "BF16", np.dtype("<u2")),
)}


def storage_dtype(name: str) -> StorageDType:
    """The storage dtype called ``name``; one-line error for any other name."""
    try:
        return STORAGE_DTYPES[name]
    except KeyError:
        raise LangNeuronError(f"unknown sentence-means dtype {name!r}; choose one of "
                              f"{', '.join(STORAGE_DTYPES)}") from None


@dataclass(frozen=True)
class Segment:
    """Sentences ``first .. first+count-1`` (corpus order) stored in shard rows ``row .. row+count-1``."""

    first: int
    count: int
    row: int


@dataclass
class StoreState:
    """What a checkpoint must remember of a shard to resume it: its rows and their segments."""

    rows: int = 0
    segments: list[Segment] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "segments": [[s.first, s.count, s.row] for s in self.segments]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoreState:
        return cls(int(d["rows"]), [Segment(*map(int, s)) for s in d["segments"]])


# ---------------------------------------------------------------------- header
def _header_bytes(shape: tuple[int, int, int], dtype: StorageDType, info: dict[str, Any]) -> bytes:
    """The fixed-size header: 8-byte little-endian JSON length, then the JSON padded with spaces."""
    nbytes = shape[0] * shape[1] * shape[2] * dtype.itemsize
    meta = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "dtype": dtype.name, **info}
    header = {TENSOR: {"dtype": dtype.safetensors, "shape": list(shape), "data_offsets": [0, nbytes]},
              "__metadata__": {"langneuron": canonical_json(meta)}}
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    room = HEADER_BYTES - 8
    if len(text) > room:
        raise LangNeuronError(f"sentence-means header needs {len(text)} bytes, more than the {room} reserved; "
                              "store less metadata with the sentence means")
    return struct.pack("<Q", room) + text + b" " * (room - len(text))


def _read_header(path: Path) -> tuple[tuple[int, int, int], StorageDType, dict[str, Any]]:
    """(shape, dtype, langneuron metadata) of a sentence-means file; one-line errors for anything else."""
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise LangNeuronError(f"cannot read sentence-means file {path}: {e.strerror or e}") from None
    if len(raw) < HEADER_BYTES or struct.unpack("<Q", raw[:8])[0] != HEADER_BYTES - 8:
        raise LangNeuronError(f"{path} is not a langneuron sentence-means file (unexpected header size)")
    try:
        header = json.loads(raw[8:])
        meta = json.loads(header["__metadata__"]["langneuron"])
        entry = header[TENSOR]
    except (ValueError, KeyError, TypeError):
        raise LangNeuronError(f"{path} is not a langneuron sentence-means file (malformed header)") from None
    if meta.get("schema") != SCHEMA:
        raise LangNeuronError(f"{path}: unexpected schema {meta.get('schema')!r}, expected {SCHEMA!r}")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise LangNeuronError(f"{path}: sentence-means schema version {meta.get('schema_version')} is not "
                              f"supported (this version reads {SCHEMA_VERSION})")
    dtype = storage_dtype(meta.get("dtype", ""))
    shape = tuple(int(x) for x in entry["shape"])
    if len(shape) != 3 or entry["dtype"] != dtype.safetensors:
        raise LangNeuronError(f"{path}: sentence_means must be [S, L, N] {dtype.safetensors}, "
                              f"got {entry['shape']} {entry['dtype']}")
    return shape, dtype, meta


# ---------------------------------------------------------------------- writing
class SentenceStoreWriter:
    """One process's shard of per-sentence means, written row by row as batches produce them.

    Usage per chunk of sentences: :meth:`reserve` the chunk's corpus range, :meth:`write` each batch's
    rows with their corpus indices, and at a checkpoint call :meth:`checkpoint` and keep the returned
    state; ``SentenceStoreWriter(path, ..., resume=state)`` continues from it.
    """

    def __init__(self, path: str | os.PathLike, num_layers: int, num_units: int, dtype: str = "float32",
                 resume: StoreState | None = None) -> None:
        self.path = Path(path)
        self.shape = (num_layers, num_units)
        self.dtype = storage_dtype(dtype)
        self.row_bytes = num_layers * num_units * self.dtype.itemsize
        self._state = StoreState() if resume is None else StoreState.from_dict(resume.to_dict())
        if resume is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
        else:
            self._fd = self._reopen()
        os.ftruncate(self._fd, self._offset(self._state.rows))  # a resume drops rows after the checkpoint
        self._write_header()

    def _reopen(self) -> int:
        """Open an existing shard for a resume, after checking it was written with the same shape and dtype."""
        if not self.path.exists():
            raise LangNeuronError(f"cannot resume: sentence-means shard {self.path} is missing")
        shape, dtype, _ = _read_header(self.path)
        if shape[1:] != self.shape or dtype != self.dtype:
            raise LangNeuronError(f"cannot resume: {self.path} holds [{shape[1]}, {shape[2]}] {dtype.name} rows, "
                                  f"this run writes [{self.shape[0]}, {self.shape[1]}] {self.dtype.name}")
        if os.path.getsize(self.path) < self._offset(self._state.rows):
            raise LangNeuronError(f"cannot resume: {self.path} is shorter than its checkpoint "
                                  f"({self._state.rows} rows); delete the checkpoint to start over")
        return os.open(self.path, os.O_RDWR)

    def _offset(self, row: int) -> int:
        return HEADER_BYTES + row * self.row_bytes

    def _write_header(self) -> None:
        info = {"complete": False}
        os.pwrite(self._fd, _header_bytes((self._state.rows, *self.shape), self.dtype, info), 0)

    def reserve(self, first: int, count: int) -> None:
        """Give sentences ``first .. first+count-1`` the next ``count`` rows (zeros until written)."""
        segs = self._state.segments
        if count < 0 or first < 0 or (segs and first < segs[-1].first + segs[-1].count):
            raise LangNeuronError(f"sentence-means segment [{first}, {first + count}) is not after the previous "
                                  "one: chunks must be reserved in corpus order")
        if count == 0:
            return
        segs.append(Segment(first, count, self._state.rows))
        self._state.rows += count
        os.ftruncate(self._fd, self._offset(self._state.rows))  # sparse: unwritten rows read as zeros

    def _row_of(self, sentence: int) -> int:
        segs = self._state.segments
        i = bisect.bisect_right([s.first for s in segs], sentence) - 1
        if i < 0 or sentence >= segs[i].first + segs[i].count:
            raise LangNeuronError(f"sentence {sentence} has no reserved row in {self.path}")
        return segs[i].row + sentence - segs[i].first

    def write(self, ids: torch.Tensor, rows: torch.Tensor) -> None:
        """Store ``rows`` ``[B, L, N]`` (any float dtype, CPU) as the sentences ``ids`` ``[B]`` (corpus indices)."""
        if tuple(rows.shape[1:]) != self.shape or rows.shape[0] != len(ids):
            raise LangNeuronError(f"sentence-means rows have shape {list(rows.shape)}, expected "
                                  f"[{len(ids)}, {self.shape[0]}, {self.shape[1]}]")
        stored = rows.detach().to("cpu", self.dtype.torch_dtype).contiguous()  # [B, L, N]
        if self.dtype.name != "float32" and not torch.isfinite(stored).all() and torch.isfinite(rows).all():
            big = float(rows.abs().max())
            raise LangNeuronError(f"per-sentence means up to {big:.4g} overflow {self.dtype.name} storage (largest "
                                  f"finite {torch.finfo(self.dtype.torch_dtype).max:.4g}); record them with "
                                  "--sentence-dtype bfloat16 or float32")
        raw = (stored.view(torch.int16) if self.dtype.name == "bfloat16" else stored).numpy()
        for sentence, row in zip(ids.tolist(), raw):
            os.pwrite(self._fd, memoryview(row).cast("B"), self._offset(self._row_of(int(sentence))))

    def state(self) -> StoreState:
        return StoreState.from_dict(self._state.to_dict())

    def checkpoint(self) -> StoreState:
        """Make every reserved row durable and the shard a readable file; returns the state to resume from."""
        self._write_header()
        os.fsync(self._fd)
        return self.state()

    def close(self) -> StoreState:
        """Checkpoint and close; the state is what :func:`finalize_store` needs of this shard."""
        state = self.checkpoint()
        os.close(self._fd)
        self._fd = -1
        return state

    def __enter__(self) -> SentenceStoreWriter:
        return self

    def __exit__(self, *exc) -> None:
        if self._fd >= 0:
            self.close()


# ---------------------------------------------------------------------- finalize (merge shards)
@dataclass
class StoreInfo:
    """A finished sentence-means file, as the statistics file refers to it."""

    file: str  # file name, relative to the statistics file's directory
    sha256: str
    shape: list[int]  # [S, L, N]
    dtype: str
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoreInfo:
        try:
            return cls(str(d["file"]), str(d["sha256"]), [int(x) for x in d["shape"]], str(d["dtype"]),
                       int(d["schema_version"]))
        except (KeyError, TypeError, ValueError):
            raise LangNeuronError(f"malformed sentence-means reference in statistics metadata: {d!r}") from None


def _corpus_layout(shards: Sequence[tuple[Path, StoreState]], num_sentences: int
                   ) -> list[tuple[int, Segment]]:
    """(shard index, segment) in corpus order, after checking that they cover 0..S-1 exactly once."""
    layout = sorted(((i, s) for i, (_, st) in enumerate(shards) for s in st.segments), key=lambda x: x[1].first)
    at = 0
    for _, s in layout:
        if s.first != at:
            what = "overlap" if s.first < at else "leave out"
            raise LangNeuronError(f"sentence-means shards {what} sentences from {min(at, s.first)}; "
                                  f"cannot merge them")
        at += s.count
    if at != num_sentences:
        raise LangNeuronError(f"sentence-means shards hold {at} sentences, the corpus has {num_sentences}")
    return layout


def _copy_range(src: int, dst: int, count: int, src_off: int, dst_off: int) -> None:
    """Copy ``count`` bytes between files, in the kernel where it can (no user-space buffer)."""
    while count > 0:
        try:
            n = os.copy_file_range(src, dst, min(count, 1 << 30), src_off, dst_off)
        except (AttributeError, OSError):  # not Linux, or a filesystem pair that cannot
            data = os.pread(src, min(count, _COPY_BLOCK), src_off)
            n = os.pwrite(dst, data, dst_off)
        if n <= 0:
            raise LangNeuronError(f"could not copy sentence means ({count} bytes left)")
        count, src_off, dst_off = count - n, src_off + n, dst_off + n


def finalize_store(shards: Sequence[str | os.PathLike], states: Sequence[StoreState],
                   out: str | os.PathLike, num_sentences: int, metadata: dict[str, Any] | None = None,
                   remove_shards: bool = True) -> StoreInfo:
    """Lay the shards' rows out in corpus order in ``out`` (closed shards; states from their writers).

    ``metadata`` (JSON) is stored in the header. One shard already in corpus order is renamed into place.
    """
    paths = [Path(p) for p in shards]
    if len(paths) != len(states) or not paths:
        raise LangNeuronError("finalize_store needs one state per shard and at least one shard")
    shape, dtype, _ = _read_header(paths[0])
    for p in paths[1:]:
        other = _read_header(p)
        if other[0][1:] != shape[1:] or other[1] != dtype:
            raise LangNeuronError(f"sentence-means shards {paths[0]} and {p} differ in shape or dtype")
    layout = _corpus_layout(list(zip(paths, states)), num_sentences)
    full = (num_sentences, shape[1], shape[2])
    header = _header_bytes(full, dtype, {"complete": True, "metadata": metadata or {}})
    row_bytes = shape[1] * shape[2] * dtype.itemsize
    out = Path(out)
    if len(paths) == 1 and all(s.row == s.first for _, s in layout):  # already in corpus order: no copy
        with open(paths[0], "r+b") as f:
            f.truncate(HEADER_BYTES + num_sentences * row_bytes)
            f.write(header)
            os.fsync(f.fileno())
        os.replace(paths[0], out)
    else:
        _merge(paths, layout, out, header, row_bytes)
        if remove_shards:
            for p in paths:
                p.unlink()
    return StoreInfo(out.name, sha256_file(out), list(full), dtype.name)


def _merge(paths: list[Path], layout: list[tuple[int, Segment]], out: Path, header: bytes, row_bytes: int) -> None:
    """Write ``header`` and every segment's rows, in corpus order, into ``out`` (atomically)."""
    fds = [os.open(p, os.O_RDONLY) for p in paths]
    try:
        with atomic_path(out, force=True) as tmp, open(tmp, "r+b") as f:
            f.write(header)
            f.flush()
            dst = HEADER_BYTES
            for i, s in layout:
                n = s.count * row_bytes
                _copy_range(fds[i], f.fileno(), n, HEADER_BYTES + s.row * row_bytes, dst)
                dst += n
            os.fsync(f.fileno())
    finally:
        for fd in fds:
            os.close(fd)


# ---------------------------------------------------------------------- reading
def _widen_into(dst: np.ndarray, stored: np.ndarray, dtype: StorageDType) -> None:
    """Write stored values into the float32 array ``dst`` (exact for every storage dtype)."""
    if dtype.name == "bfloat16":  # bfloat16 is the upper half of a float32
        wide = stored.astype(np.uint32)
        wide <<= 16
        dst[...] = wide.view(np.float32)
    else:
        dst[...] = stored  # float16 -> float32 converts during the copy, without a temporary


class SentenceMeansReader:
    """Reading interface shared by the file and the in-memory form: ``[rows, units]`` float32 blocks."""

    shape: tuple[int, int, int]  # [S, L, N]
    dtype: StorageDType

    @property
    def num_sentences(self) -> int:
        return self.shape[0]

    @property
    def num_units(self) -> int:
        return self.shape[1] * self.shape[2]

    @property
    def itemsize(self) -> int:
        """Bytes per stored value (what reading one value costs in I/O)."""
        return self.dtype.itemsize

    def block(self, start: int, stop: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Units ``start .. stop-1`` (flat ``layer * N + neuron``) of all sentences or of ``rows`` (indices):
        a new ``[S or len(rows), stop-start]`` float32 array."""
        raise NotImplementedError

    def columns(self, units: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Scattered units (flat indices) of all sentences or of ``rows``: ``[S or len(rows), len(units)]``."""
        raise NotImplementedError

    def iter_blocks(self, chunk_units: int, rows: np.ndarray | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first unit, ``[S, u]`` float32 block) for consecutive unit ranges of ``chunk_units``."""
        step = max(1, chunk_units)
        for start in range(0, self.num_units, step):
            yield start, self.block(start, min(self.num_units, start + step), rows)

    def to_tensor(self) -> torch.Tensor:
        """The whole ``[S, L, N]`` block as a float32 tensor in memory (small stores only)."""
        return torch.from_numpy(self.block(0, self.num_units)).reshape(self.shape)

    def subset(self, rows: np.ndarray) -> SentenceMeansReader:
        """The sentences ``rows`` (indices, in that order) as a reader of their own; nothing is read now."""
        return RowSubset(self, rows)


class RowSubset(SentenceMeansReader):
    """Some sentences of another reader (``ActivationStats.subset_languages`` on file-backed means)."""

    def __init__(self, base: SentenceMeansReader, rows: np.ndarray) -> None:
        self.base, self.rows = base, np.asarray(rows, dtype=np.int64)
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= base.num_sentences):
            raise LangNeuronError(f"sentence rows outside 0..{base.num_sentences - 1}")
        self.shape = (len(self.rows), *base.shape[1:])
        self.dtype = base.dtype

    def block(self, start: int, stop: int, rows: np.ndarray | None = None) -> np.ndarray:
        return self.base.block(start, stop, self.rows if rows is None else self.rows[rows])

    def columns(self, units: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        return self.base.columns(units, self.rows if rows is None else self.rows[rows])


class SentenceMeansFile(SentenceMeansReader):
    """A finished sentence-means file, read through a memory map that lives for one block only."""

    def __init__(self, path: str | os.PathLike, sha256: str | None = None) -> None:
        """Open and check ``path``; with ``sha256`` also its content (one sequential read of the file)."""
        self.path = Path(path)
        if not self.path.is_file():
            raise LangNeuronError(f"sentence-means file not found: {self.path}")
        self.shape, self.dtype, self.meta = _read_header(self.path)
        S, L, N = self.shape
        expected = HEADER_BYTES + S * L * N * self.dtype.itemsize
        if os.path.getsize(self.path) != expected or not self.meta.get("complete"):
            raise LangNeuronError(f"sentence-means file {self.path} is incomplete or truncated "
                                  f"({os.path.getsize(self.path)} bytes, expected {expected})")
        self._expected_sha256 = sha256
        self._sha256 = sha256

    def _known(self, sha256: str) -> SentenceMeansFile:
        """Record a sha256 computed while writing the file (no re-read to check it)."""
        self._sha256 = sha256
        return self

    def sha256(self) -> str:
        """The file's sha256: the one it was opened with (checked before the first read), else computed once."""
        if self._sha256 is None:
            self._sha256 = sha256_file(self.path)
        return self._sha256

    def verify(self) -> None:
        """Check the content against the sha256 given at opening (once; one sequential read of the file).

        Called before the first read, so that opening statistics stays cheap for detectors that never read
        the per-sentence means."""
        if self._expected_sha256 is not None:
            if sha256_file(self.path) != self._expected_sha256:
                raise LangNeuronError(f"sentence-means file {self.path} failed its sha256 check (modified or "
                                      "replaced since the statistics were written)")
            self._expected_sha256 = None

    def block(self, start: int, stop: int, rows: np.ndarray | None = None) -> np.ndarray:
        return self._read(slice(start, stop), stop - start, rows)

    def columns(self, units: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        units = np.asarray(units, dtype=np.int64)
        return self._read(units, len(units), rows)

    @property
    def row_bytes(self) -> int:
        return self.num_units * self.itemsize

    def _read(self, cols: slice | np.ndarray, width: int, rows: np.ndarray | None) -> np.ndarray:
        """Columns ``cols`` of the selected rows as a new float32 array, through memory maps of at most
        :data:`MAP_BYTES` of rows (one row if larger), each unmapped before the next: the pages a map
        touched leave this process's resident set (they stay in the page cache)."""
        sel = np.arange(self.num_sentences) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.empty((len(sel), width), dtype=np.float32)  # [rows, width]
        if out.size == 0:
            return out
        self.verify()
        step = max(1, MAP_BYTES // self.row_bytes)
        for i in range(0, len(sel), step):
            part = sel[i: i + step]
            lo, hi = int(part.min()), int(part.max()) + 1
            m = np.memmap(self.path, dtype=self.dtype.numpy, mode="r", offset=HEADER_BYTES + lo * self.row_bytes,
                          shape=(hi - lo, self.num_units))  # [rows lo..hi-1, U]
            local = part - lo
            if rows is None:
                got = m[:, cols]  # a view for a unit range, a copy of the columns otherwise
            else:
                got = m[local, cols] if isinstance(cols, slice) else m[np.ix_(local, cols)]
            _widen_into(out[i: i + len(part)], got, self.dtype)
            del m, got
        return out


def copy_store(source: SentenceMeansReader, out: str | os.PathLike, dtype: str | None = None) -> SentenceMeansFile:
    """Write ``source``'s rows (all of them, in order) into a new sentence-means file ``out``, a block of rows at
    a time (memory: one block of at most ``MAP_BYTES``); for saving selected or in-memory means to a sidecar."""
    out = Path(out)
    shard = out.with_name(out.name + ".partial")
    S, L, N = source.shape
    step = max(1, MAP_BYTES // max(1, L * N * 4))
    with SentenceStoreWriter(shard, L, N, dtype or source.dtype.name) as w:
        w.reserve(0, S)
        for r0 in range(0, S, step):
            ids = np.arange(r0, min(S, r0 + step))
            w.write(torch.from_numpy(ids), torch.from_numpy(source.block(0, L * N, ids)).reshape(len(ids), L, N))
        state = w.close()
    info = finalize_store([shard], [state], out, S)
    return SentenceMeansFile(out, sha256=None)._known(info.sha256)


class TensorSentenceMeans(SentenceMeansReader):
    """The same reading interface over an in-memory ``[S, L, N]`` tensor (statistics with inline means)."""

    def __init__(self, means: torch.Tensor) -> None:
        self.shape = tuple(int(x) for x in means.shape)
        self.dtype = STORAGE_DTYPES["float32"]
        self._flat = means.reshape(self.shape[0], -1).to(torch.float32).numpy()  # [S, U], no copy if float32

    def block(self, start: int, stop: int, rows: np.ndarray | None = None) -> np.ndarray:
        part = self._flat[:, start:stop] if rows is None else self._flat[rows, start:stop]
        return np.array(part, dtype=np.float32, order="C")

    def columns(self, units: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        units = np.asarray(units, dtype=np.int64)
        return np.array(self._flat[:, units] if rows is None else self._flat[np.ix_(rows, units)], order="C")


# ---------------------------------------------------------------------- memory budget, unit-chunked computations
QUANTILE_BYTES_PER_VALUE = 48  # float32 block + float64 copy + torch.sort values/indices + slack
DEFAULT_BUDGET_FRACTION = 0.5
FALLBACK_AVAILABLE = 8 << 30  # assumed free memory where the system cannot say
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_configured_budget: int | None = None  # set by --memory-budget (set_memory_budget)


# ---------------------------------------------------------------------- the budget
def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> int | None:
    """Bytes this process can still allocate without swapping: ``MemAvailable``, capped by a cgroup limit."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):  # cgroup v1
        cap, used = _read_int(limit), _read_int(usage)
        if cap is not None and used is not None and cap < (1 << 60):  # v1 reports "no limit" as ~2^63
            found.append(max(0, cap - used))
    if not found and hasattr(os, "sysconf"):
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            pass
    return min(found) if found else None


def default_memory_budget(fraction: float = DEFAULT_BUDGET_FRACTION) -> int:
    """The budget set with :func:`set_memory_budget` (``--memory-budget``), else half the memory available
    now (see :func:`available_memory`): room for the rest of the process."""
    if _configured_budget is not None:
        return _configured_budget
    avail = available_memory()
    return int((FALLBACK_AVAILABLE if avail is None else avail) * fraction)


def set_memory_budget(budget: int | None) -> None:
    """Bytes the out-of-core computations of this process may use (None: the default from free memory)."""
    global _configured_budget
    _configured_budget = budget


def parse_memory_size(text: str) -> int:
    """``"8G"``, ``"512MiB"``, ``"1.5 GB"``, ``"100000"`` -> bytes (binary multiples); one-line error otherwise."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", str(text).lower())
    if not m:
        raise LangNeuronError(f"memory budget {text!r} is not a size (examples: 8G, 512M, 1.5GiB, 100000)")
    value = int(float(m.group(1)) * _UNITS[m.group(2)])
    if value <= 0:
        raise LangNeuronError(f"memory budget must be positive, got {text!r}")
    return value


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


@dataclass(frozen=True)
class ChunkPlan:
    """How a computation over ``num_units`` units is cut into blocks so that it fits ``budget`` bytes.

    A block of ``chunk_units`` units is read at a time; the AP kernel works through it ``kernel_units``
    units at a time, and its work arrays for those are part of ``fixed_bytes``.
    """

    budget: int
    fixed_bytes: int  # held for the whole computation (results, reader, kernel work arrays)
    bytes_per_unit: int  # per unit of a block
    num_units: int
    chunk_units: int
    kernel_units: int = 0  # AP only: units per kernel call
    identical: bool = True  # AP only: kernel calls cover the same units as the in-memory path's

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.num_units / self.chunk_units) if self.num_units else 0

    @property
    def peak_bytes(self) -> int:
        """Planned peak: the fixed part plus one full block."""
        return self.fixed_bytes + self.chunk_units * self.bytes_per_unit


def too_small(what: str, budget: int, needed: int, fixed: int, per_unit: int) -> LangNeuronError:
    return LangNeuronError(f"memory budget {format_bytes(budget)} is too small for {what}: it needs at least "
                           f"{format_bytes(needed)} ({format_bytes(fixed)} fixed + {format_bytes(per_unit)} per "
                           "unit); raise --memory-budget")


def reader_bytes(num_rows: int, row_units: int, itemsize: int) -> int:
    """What a reader holds besides the block it returns: the rows mapped at a time (at most
    ``MAP_BYTES``, or one row), a copy of their selected values when rows are picked by index, and the
    uint32 temporary that widens bfloat16 (counted for any 2-byte storage)."""
    row_bytes = max(1, row_units * itemsize)
    mapped = min(num_rows, max(1, MAP_BYTES // row_bytes)) * row_bytes
    return mapped * (2 + (2 if itemsize == 2 else 0))


def plan_quantile_chunks(num_rows: int, num_units: int, num_quantiles: int, budget: int, row_units: int,
                         itemsize: int = 4) -> ChunkPlan:
    """Block size of :func:`unit_quantiles` for ``budget`` bytes (``row_units``: units in a stored row)."""
    fixed = 8 * num_quantiles * num_units + reader_bytes(num_rows, row_units, itemsize) + 16 * num_rows
    per_unit = QUANTILE_BYTES_PER_VALUE * num_rows + 8 * num_quantiles
    units = (budget - fixed) // per_unit
    if units < 1 and num_units > 0:
        raise too_small(f"quantiles of {num_units} units over {num_rows} sentences", budget, fixed + per_unit,
                         fixed, per_unit)
    return ChunkPlan(budget, fixed, per_unit, num_units, int(max(1, min(units, num_units))))


def check_finite(block: np.ndarray, units: np.ndarray, rows: np.ndarray | None, num_neurons: int) -> None:
    """One-line refusal of a block holding NaN or inf (an overflowed or broken recording).

    ``units`` / ``rows``: flat unit and sentence index of each block column / row (None: row i is sentence i).
    A float64 sum of float32 values cannot overflow, so it is finite exactly when every value is; only a
    poisoned block pays for locating the first bad value.
    """
    if np.isfinite(block.sum(dtype=np.float64)):
        return
    bad = ~np.isfinite(block)  # [rows, u]
    i, j = (int(x[0]) for x in np.nonzero(bad))
    layer, neuron = divmod(int(units[j]), num_neurons)
    raise LangNeuronError(f"the per-sentence means hold non-finite values ({int(bad.sum())} in one block; first: "
                          f"sentence {i if rows is None else int(rows[i])}, layer {layer}, unit {neuron}); "
                          "detectors do not rank or steer with poisoned statistics -- re-record them")


def unit_quantiles(source: SentenceMeansReader, rows: np.ndarray, units: Sequence[int], quantiles: Sequence[float],
                   budget: int | None = None) -> torch.Tensor:
    """``torch.quantile`` over the sentences ``rows`` of each unit (flat index): ``[len(quantiles), n]`` float64.

    The same numbers as ``torch.quantile(means[rows][:, units].double(), q, dim=0)`` for each ``q``
    (``ActivationStats.unit_values``), read a block of units at a time; the units are visited in flat
    order so that a block's reads stay close together, and put back in the caller's order.
    """
    units = np.asarray(units, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    out = torch.empty(len(quantiles), len(units), dtype=torch.float64)
    if len(units) == 0 or len(rows) == 0:
        return out.fill_(float("nan"))
    plan = plan_quantile_chunks(len(rows), len(units), len(quantiles),
                                default_memory_budget() if budget is None else budget, source.num_units,
                                source.itemsize)
    order = np.argsort(units, kind="stable")
    for c0 in range(0, len(units), plan.chunk_units):
        pick = order[c0: c0 + plan.chunk_units]
        got = source.columns(units[pick], rows)  # [len(rows), u] float32
        check_finite(got, units[pick], rows, source.shape[2])
        block = torch.from_numpy(got).double()
        for i, q in enumerate(quantiles):
            out[i, torch.from_numpy(pick)] = torch.quantile(block, q, dim=0)
    return out
