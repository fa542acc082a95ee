"""Per-sentence means streamed to disk (core/sentence_store.py) and the out-of-core detectors on them.

References are independent of the code under test: rows kept in memory by the test, sklearn's
average_precision_score, the in-memory AP kernel on the whole block, and torch.quantile on the whole block.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from safetensors import safe_open
from sklearn.metrics import average_precision_score

from langneuron_eval.core.sentence_store import (
    HEADER_BYTES,
    SentenceMeansFile,
    SentenceStoreWriter,
    StoreInfo,
    StoreState,
    TensorSentenceMeans,
    default_memory_budget,
    finalize_store,
    parse_memory_size,
    reader_bytes,
    set_memory_budget,
    unit_quantiles,
)
from langneuron_eval.detectors import out_of_core as kojima  # the AP kernel and its out-of-core driver
from langneuron_eval.detectors.out_of_core import (
    BLOCK_BYTES_PER_VALUE,
    KERNEL_BYTES_PER_VALUE,
    RANK_BYTES_PER_UNIT,
    average_precision_out_of_core,
    plan_ap_chunks,
)
from langneuron_eval.errors import LangNeuronError

L, N = 3, 40


def _means(S: int, seed: int = 0, ties: bool = True) -> torch.Tensor:
    """[S, L, N] sentence means with exact ties and zeros (as ReLU-like units give), language-shifted."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(S, L, N, generator=g)
    if ties:
        x = torch.where(x < -0.3, torch.zeros_like(x), (x * 4).round() / 4)
    return x


def _chunks(S: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(size, S - a)) for a in range(0, S, size)]


def _write_chunk(w: SentenceStoreWriter, means: torch.Tensor, first: int, count: int, batch: int = 4,
                 skip: frozenset = frozenset()) -> None:
    """Reserve a chunk and write its rows in a shuffled (length-sorted-like) order, as the recorder does."""
    w.reserve(first, count)
    order = torch.randperm(count, generator=torch.Generator().manual_seed(first)) + first
    order = order[[int(i) not in skip for i in order]]
    for b in range(0, len(order), batch):
        ids = order[b: b + batch]
        w.write(ids, means[ids])


def _single(tmp_path, means: torch.Tensor, dtype: str = "float32", chunk: int = 7, name: str = "one",
            skip: frozenset = frozenset()) -> tuple[StoreInfo, SentenceMeansFile]:
    shard = tmp_path / f"{name}.shard"
    with SentenceStoreWriter(shard, L, N, dtype) as w:
        for first, count in _chunks(len(means), chunk):
            _write_chunk(w, means, first, count, skip=skip)
        state = w.close()
    info = finalize_store([shard], [state], tmp_path / f"{name}.safetensors", len(means), {"langs": ["en", "de"]})
    return info, SentenceMeansFile(tmp_path / info.file, sha256=info.sha256)


# ---------------------------------------------------------------------- the store
@pytest.mark.parametrize("dtype,torch_dtype", [("float32", torch.float32), ("float16", torch.float16),
                                               ("bfloat16", torch.bfloat16)])
def test_round_trip_in_corpus_order(tmp_path, dtype, torch_dtype):
    means = _means(50, ties=False)
    info, store = _single(tmp_path, means, dtype)
    expected = means.to(torch_dtype).float()
    assert torch.equal(store.to_tensor(), expected)
    assert store.shape == (50, L, N) and info.shape == [50, L, N] and info.dtype == dtype
    # a plain safetensors reader sees the same tensor (the file is valid safetensors)
    with safe_open(str(tmp_path / info.file), framework="pt") as f:
        assert torch.equal(f.get_tensor("sentence_means").float(), expected)
    size = (tmp_path / info.file).stat().st_size
    assert size == HEADER_BYTES + 50 * L * N * torch.finfo(torch_dtype).bits // 8
    rows = np.array([49, 3, 17])
    assert torch.equal(torch.from_numpy(store.block(5, 70, rows)), expected.reshape(50, -1)[rows][:, 5:70])
    cols = np.array([100, 2, 77])
    assert torch.equal(torch.from_numpy(store.columns(cols, rows)), expected.reshape(50, -1)[rows][:, cols])


def test_rows_never_written_are_zero(tmp_path):
    """Empty texts produce no row in the recorder; their sentences read as zeros, as in memory."""
    means = _means(12)
    shard = tmp_path / "s.shard"
    w = SentenceStoreWriter(shard, L, N)
    _write_chunk(w, means, 0, 12, skip=frozenset({4, 9}))
    info = finalize_store([shard], [w.close()], tmp_path / "s.safetensors", 12)
    got = SentenceMeansFile(tmp_path / info.file).to_tensor()
    expected = means.clone()
    expected[[4, 9]] = 0
    assert torch.equal(got, expected)


def test_resume_truncates_to_checkpoint_and_gives_the_same_bytes(tmp_path):
    means = _means(40)
    empty = frozenset({22})  # an empty text: its row is never written, so it must not keep pre-crash bytes
    ref, _ = _single(tmp_path, means, name="ref", skip=empty)
    shard = tmp_path / "run.shard"
    w = SentenceStoreWriter(shard, L, N)
    chunks = _chunks(40, 7)
    for first, count in chunks[:3]:
        _write_chunk(w, means, first, count, skip=empty)
    saved = StoreState.from_dict(w.checkpoint().to_dict())  # as the recorder's checkpoint JSON keeps it
    first, count = chunks[3]
    _write_chunk(w, means + 100, first, count)  # rows after the checkpoint: lost in the "crash"
    del w  # interrupted without closing
    w = SentenceStoreWriter(shard, L, N, resume=saved)
    assert w.state().rows == 21
    for first, count in chunks[3:]:
        _write_chunk(w, means, first, count, skip=empty)
    info = finalize_store([shard], [w.close()], tmp_path / "run.safetensors", 40, {"langs": ["en", "de"]})
    assert (tmp_path / info.file).read_bytes() == (tmp_path / ref.file).read_bytes()
    assert info.sha256 == ref.sha256


def test_resume_refuses_another_shape_or_dtype(tmp_path):
    shard = tmp_path / "a.shard"
    w = SentenceStoreWriter(shard, L, N)
    _write_chunk(w, _means(5), 0, 5)
    state = w.close()
    with pytest.raises(LangNeuronError, match="float16"):
        SentenceStoreWriter(shard, L, N, "float16", resume=state)
    with pytest.raises(LangNeuronError, match="missing"):
        SentenceStoreWriter(tmp_path / "gone.shard", L, N, resume=state)


@pytest.mark.parametrize("S,chunk", [(40, 7), (42, 7), (5, 7)])
def test_two_shards_merge_to_the_single_writer_file(tmp_path, S, chunk):
    """Rank r writes chunks r, r+2, ... of the corpus; the merged file equals one writer's, byte for byte."""
    means = _means(S, seed=3)
    ref, _ = _single(tmp_path, means, chunk=chunk, name="ref")
    shards = [tmp_path / f"rank{r}.shard" for r in range(2)]
    writers = [SentenceStoreWriter(p, L, N) for p in shards]
    for c, (first, count) in enumerate(_chunks(S, chunk)):
        _write_chunk(writers[c % 2], means, first, count)
    states = [w.close() for w in writers]
    info = finalize_store(shards, states, tmp_path / "merged.safetensors", S, {"langs": ["en", "de"]})
    assert (tmp_path / info.file).read_bytes() == (tmp_path / ref.file).read_bytes()
    assert not any(p.exists() for p in shards)


def test_merge_refuses_gaps_and_overlaps(tmp_path):
    means = _means(20)
    a, b = tmp_path / "a.shard", tmp_path / "b.shard"
    wa, wb = SentenceStoreWriter(a, L, N), SentenceStoreWriter(b, L, N)
    _write_chunk(wa, means, 0, 10)
    _write_chunk(wb, means, 12, 8)
    sa, sb = wa.close(), wb.close()
    with pytest.raises(LangNeuronError, match="leave out sentences from 10"):
        finalize_store([a, b], [sa, sb], tmp_path / "m.safetensors", 20)
    with pytest.raises(LangNeuronError, match="overlap"):
        finalize_store([a, a], [sa, sa], tmp_path / "m.safetensors", 20)


def test_writer_refuses_out_of_order_chunks_and_unreserved_rows(tmp_path):
    w = SentenceStoreWriter(tmp_path / "w.shard", L, N)
    w.reserve(10, 5)
    with pytest.raises(LangNeuronError, match="corpus order"):
        w.reserve(12, 3)
    with pytest.raises(LangNeuronError, match="no reserved row"):
        w.write(torch.tensor([3]), torch.zeros(1, L, N))
    with pytest.raises(LangNeuronError, match="shape"):
        w.write(torch.tensor([10]), torch.zeros(1, L, N + 1))
    w.close()


def test_reader_refuses_truncated_and_modified_files(tmp_path):
    info, _ = _single(tmp_path, _means(10))
    path = tmp_path / info.file
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    store = SentenceMeansFile(path, sha256=info.sha256)  # opening stays cheap; the first read checks the hash
    with pytest.raises(LangNeuronError, match="sha256"):
        store.block(0, 1)
    path.write_bytes(bytes(data[:-4]))
    with pytest.raises(LangNeuronError, match="truncated"):
        SentenceMeansFile(path)


def test_float16_overflow_stops_the_writer_in_one_line(tmp_path):
    means = _means(20, ties=False)
    means[7, 1, 3] = 1e5  # beyond float16's 65504: would be stored as inf
    with pytest.raises(LangNeuronError, match="overflow float16 storage.*--sentence-dtype bfloat16"):
        _single(tmp_path, means, "float16")
    _single(tmp_path, means, "bfloat16", name="b")  # bfloat16 has float32's range


def test_non_finite_means_are_refused_by_the_detector_in_one_line(tmp_path):
    means = _means(20, ties=False)
    means[7, 1, 3] = float("nan")  # a poisoned recording (the recorder itself would stop; a foreign file need not)
    _, store = _single(tmp_path, means)
    labels = torch.arange(20) % 2
    with pytest.raises(LangNeuronError, match=r"non-finite values .*sentence 7, layer 1, unit 3"):
        average_precision_out_of_core(store, labels, 2, budget=1 << 30)
    with pytest.raises(LangNeuronError, match=r"sentence 7, layer 1, unit 3"):
        unit_quantiles(store, np.arange(20), [N + 3], (0.5,), budget=1 << 30)


# ---------------------------------------------------------------------- out-of-core detectors
def _labels(S: int, K: int) -> torch.Tensor:
    return torch.arange(S) % K


@pytest.fixture
def small_kernel_chunks(monkeypatch):
    """The in-memory AP path in chunks of 5 units at S = 300 (instead of ~14,000), so that blocks hold several."""
    monkeypatch.setattr(kojima, "CHUNK_ELEMENTS", 5 * 300)


def _no_nan(x: torch.Tensor) -> torch.Tensor:
    return torch.nan_to_num(x, nan=-1.0)


@pytest.mark.parametrize("ties", [True, False])
def test_out_of_core_ap_equals_in_memory_ap_with_many_chunks(tmp_path, small_kernel_chunks, ties):
    S, K = 300, 3
    means = _means(S, seed=5, ties=ties)  # continuous scores: numpy's row sums differ in the last bits by shape
    labels = _labels(S, K)
    labels[labels == 2] = 1  # class 2 has no sentences: NaN in both paths
    _, store = _single(tmp_path, means)
    first = plan_ap_chunks(S, L * N, K, 1 << 40)
    budget = first.fixed_bytes + 15 * first.bytes_per_unit + 5  # room for 3 kernel chunks per block
    got, plan = average_precision_out_of_core(store, labels, K, budget=budget)
    assert (plan.kernel_units, plan.chunk_units, plan.num_chunks, plan.identical) == (5, 15, 8, True)
    expected = kojima.average_precision(means.reshape(S, -1), labels, K)
    assert torch.equal(_no_nan(got), _no_nan(expected))
    assert torch.isnan(got[2]).all()
    for u in (0, 33, L * N - 1):  # and both are sklearn's AP
        for k in range(2):
            ref = average_precision_score((labels == k).numpy(), means.reshape(S, -1)[:, u].numpy())
            assert got[k, u].item() == pytest.approx(ref, abs=1e-12)


def test_a_budget_below_one_kernel_chunk_still_gives_the_ap(tmp_path, small_kernel_chunks):
    S, K = 300, 3
    means = _means(S, seed=6, ties=False)
    _, store = _single(tmp_path, means)
    first = plan_ap_chunks(S, L * N, K, 1 << 40)
    budget = first.fixed_bytes - KERNEL_BYTES_PER_VALUE * S * 5 + 2 * (BLOCK_BYTES_PER_VALUE + KERNEL_BYTES_PER_VALUE) * S
    got, plan = average_precision_out_of_core(store, _labels(S, K), K, budget=budget)
    assert (plan.kernel_units, plan.chunk_units, plan.identical) == (2, 2, False)
    assert plan.peak_bytes <= budget
    torch.testing.assert_close(got, kojima.average_precision(means.reshape(S, -1), _labels(S, K), K),
                               rtol=0, atol=1e-15)


def test_ap_and_quantiles_on_a_subset_of_sentences(tmp_path):
    """subset_languages on file-backed means: a row subset reads only those sentences, in that order."""
    means = _means(60, seed=9)
    _, store = _single(tmp_path, means)
    rows = np.array([59, 0, 30, 31, 7, 8, 12, 40, 41, 50])
    sub = store.subset(rows)
    assert torch.equal(sub.to_tensor(), means[torch.from_numpy(rows)])
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 1, 0, 0, 1])
    got, _ = average_precision_out_of_core(sub, labels, 2, budget=1 << 30)
    assert torch.equal(got, kojima.average_precision(means[torch.from_numpy(rows)].reshape(10, -1), labels, 2))
    q = unit_quantiles(sub, np.array([1, 3, 5]), [4, 90], (0.5,), budget=1 << 30)
    whole = means[torch.from_numpy(rows[[1, 3, 5]])].reshape(3, -1)[:, [4, 90]].double()
    assert torch.equal(q[0], torch.quantile(whole, 0.5, dim=0))


def test_out_of_core_ap_on_an_in_memory_tensor_is_the_same():
    S, K = 60, 4
    means = _means(S, seed=8)
    got, _ = average_precision_out_of_core(TensorSentenceMeans(means), _labels(S, K), K, budget=1 << 30)
    assert torch.equal(got, kojima.average_precision(means.reshape(S, -1), _labels(S, K), K))


@pytest.mark.parametrize("steps", [1, 2, 13, 10**6])
def test_plan_reads_as_many_kernel_chunks_as_the_budget_holds(steps):
    S, U, K = 6000, 352_256, 6  # Kojima's protocol at Llama-2-7B width
    step = kojima.CHUNK_ELEMENTS // S
    first = plan_ap_chunks(S, U, K, 1 << 50)
    budget = first.fixed_bytes + steps * step * first.bytes_per_unit + step * first.bytes_per_unit - 1
    plan = plan_ap_chunks(S, U, K, budget)
    assert plan.kernel_units == step and plan.identical
    assert plan.chunk_units == min(U, steps * step)
    assert plan.peak_bytes <= budget
    assert plan.chunk_units == U or plan.peak_bytes + step * plan.bytes_per_unit > budget  # one more would not fit


def test_budget_too_small_is_one_line():
    with pytest.raises(LangNeuronError, match="too small for kojima_ap.*raise --memory-budget"):
        plan_ap_chunks(6000, 352_256, 6, 1 << 20)


def test_ap_allocations_stay_within_the_planned_peak(tmp_path, monkeypatch):
    """numpy's allocations (traced by tracemalloc) during the out-of-core AP stay within the plan.

    Everything the plan counts is traced except what numpy does not allocate: the reader's mapped pages,
    the torch result and the detector's ranking (not run here); the rest must fit, and mostly be used.
    """
    S, K, width = 1200, 2, 200
    monkeypatch.setattr(kojima, "CHUNK_ELEMENTS", 100 * S)
    g = torch.Generator().manual_seed(11)
    means = torch.randn(S, L, width, generator=g)
    shard = tmp_path / "w.shard"
    with SentenceStoreWriter(shard, L, width) as w:
        w.reserve(0, S)
        w.write(torch.arange(S), means)
        state = w.close()
    store = SentenceMeansFile(tmp_path / finalize_store([shard], [state], tmp_path / "w.safetensors", S).file)
    labels = (torch.arange(S) % 10 != 0).long()  # a large class: the per-class part of the kernel is largest
    U = L * width
    first = plan_ap_chunks(S, U, K, 1 << 40)
    plan = plan_ap_chunks(S, U, K, first.fixed_bytes + 300 * first.bytes_per_unit)
    assert (plan.kernel_units, plan.chunk_units, plan.num_chunks) == (100, 300, 2)
    tracemalloc.start()
    try:
        average_precision_out_of_core(store, labels, K, plan=plan)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    untraced = reader_bytes(S, U, 4) + 8 * K * U + RANK_BYTES_PER_UNIT * U
    assert 0.7 * (plan.peak_bytes - untraced) < peak <= plan.peak_bytes - untraced


def test_unit_quantiles_equal_torch_quantile_on_the_whole_block(tmp_path):
    S = 80
    means = _means(S, seed=2)
    _, store = _single(tmp_path, means)
    rows = np.nonzero((_labels(S, 3) == 1).numpy())[0]
    units = [100, 3, 57, 3 * N - 1, 0, 41]  # any order, as a neuron set lists them
    qs = (0.5, 0.1, 0.9, 0.99)
    got = unit_quantiles(store, rows, units, qs, budget=1 << 20)  # tiny: several unit blocks
    whole = means.reshape(S, -1)[torch.from_numpy(rows)][:, units].double()
    for i, q in enumerate(qs):
        assert torch.equal(got[i], torch.quantile(whole, q, dim=0))


# ---------------------------------------------------------------------- the budget itself
def test_default_budget_is_half_of_what_is_available():
    with open("/proc/meminfo") as f:
        avail = next(int(x.split()[1]) * 1024 for x in f if x.startswith("MemAvailable:"))
    budget = default_memory_budget()
    assert 0 < budget <= 0.6 * avail
    set_memory_budget(12345)  # --memory-budget
    try:
        assert default_memory_budget() == 12345
    finally:
        set_memory_budget(None)


@pytest.mark.parametrize("text,value", [("8G", 8 << 30), ("512MiB", 512 << 20), ("1.5 GB", 3 << 29),
                                        ("100000", 100000), ("64k", 65536)])
def test_parse_memory_size(text, value):
    assert parse_memory_size(text) == value


@pytest.mark.parametrize("text", ["lots", "-1G", "0", "8X"])
def test_parse_memory_size_refuses_nonsense(text):
    with pytest.raises(LangNeuronError, match="memory budget"):
        parse_memory_size(text)
