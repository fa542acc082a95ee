"""Recording and interventions on GPUs: counters on the activations' device, half precision, layers spread
over devices, NCCL. Skipped (with the reason shown by ``-ra``) where no CUDA device is present.

Run on a GPU machine: ``HF_HUB_OFFLINE=1 pytest -q tests/gpu``.
"""

import os
import subprocess
import sys

import pytest
import torch

from langneuron_eval.core.corpus import resolve_corpus
from langneuron_eval.core.counters import Accumulator
from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.interventions import Intervention, LanguageEdit
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.recorder import RecordConfig, record
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.testing import make_tiny_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA device: GPU recording/intervention checks need one")


def _close_counts(a: torch.Tensor, b: torch.Tensor, share: float = 1e-3) -> None:
    """GPU and CPU kernels round differently, so an activation within an ulp of 0 may flip sign."""
    assert (a != b).float().mean().item() <= share


def _cpu_and_gpu(tiny_corpus_dir, dtype=torch.float32, **cfg):
    model, tok = make_tiny_model("llama")
    sources = resolve_corpus([str(tiny_corpus_dir)], ["en", "de", "zh"])
    config = RecordConfig(batch_size=3, sentence_means=True, **cfg)
    cpu = record(model, tok, sources, config, progress=False)
    gpu = record(model.to("cuda", dtype), tok, sources, config, progress=False)
    return cpu, gpu


def test_counters_live_on_the_activations_device():
    acc = Accumulator(K=1, L=2, N=8, sentence_means=True)
    acc.start_batch(torch.ones(2, 3, dtype=torch.bool))
    acts = torch.randn(2, 3, 8, device="cuda")
    acc(0, acts)
    acc(1, acts.half())
    assert all(c.device.type == "cuda" for c in acc.layers)
    assert acc.layers[0].positive.dtype == torch.int64 and acc.layers[1].chunk.dtype == torch.float64
    acc.end_batch(6, torch.arange(2))
    assert acc.sentence_rows[0].device.type == "cpu"  # moved once per batch, to be saved
    totals = acc.totals("cpu")
    assert totals["positive"].shape == (1, 2, 8) and totals["positive"].device.type == "cpu"


def test_record_on_cuda_matches_the_cpu(tiny_corpus_dir):
    cpu, gpu = _cpu_and_gpu(tiny_corpus_dir)
    assert torch.equal(cpu.n_tokens, gpu.n_tokens)
    _close_counts(cpu.positive_counts, gpu.positive_counts)
    torch.testing.assert_close(cpu.activation_sums, gpu.activation_sums, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cpu.sentence_means, gpu.sentence_means, rtol=1e-3, atol=1e-4)
    assert gpu.positive_counts.device.type == "cpu"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_models_accumulate_in_full_precision(tiny_corpus_dir, dtype):
    cpu, gpu = _cpu_and_gpu(tiny_corpus_dir, dtype)
    assert gpu.metadata["dtype"] == str(dtype).replace("torch.", "")
    assert gpu.positive_counts.dtype == torch.int64 and gpu.activation_sums.dtype == torch.float64
    assert torch.equal(cpu.n_tokens, gpu.n_tokens)
    _close_counts(cpu.positive_counts, gpu.positive_counts, share=0.05)  # half precision flips more signs
    torch.testing.assert_close(cpu.activation_sums, gpu.activation_sums, rtol=0.05, atol=0.05)


def test_layers_on_two_devices_keep_their_counters_there(tiny_corpus_dir):
    """A device_map model: embeddings and layer 0 on the GPU, layer 1 and the head on the CPU."""
    from accelerate import dispatch_model

    model, tok = make_tiny_model("llama")
    sources = resolve_corpus([str(tiny_corpus_dir)], ["en", "zh"])
    config = RecordConfig(batch_size=3)
    ref = record(model, tok, sources, config, progress=False)
    device_map = {"model.embed_tokens": 0, "model.rotary_emb": 0, "model.layers.0": 0, "model.layers.1": "cpu",
                  "model.norm": "cpu", "lm_head": "cpu"}
    spread = dispatch_model(model, device_map=device_map)
    got = record(spread, tok, sources, config, progress=False)
    assert torch.equal(ref.n_tokens, got.n_tokens)
    _close_counts(ref.positive_counts, got.positive_counts)
    torch.testing.assert_close(ref.activation_sums, got.activation_sums, rtol=1e-4, atol=1e-4)


def test_intervention_on_cuda_restores_logits_bit_for_bit():
    model, tok = make_tiny_model("llama", seed=1)
    model = model.to("cuda")
    nf = NeuronFile(ModelFingerprint("llama", 2, 48, "act_out"), "handmade", {"zh": [[0, 3], [1, 10]]},
                    values={"zh": {"mean": [0.5, -1.0]}})
    enc = tok(["你好 hello"], return_tensors="pt").to("cuda")
    with torch.no_grad():
        before = model(**enc).logits
        with Intervention(model, nf, [LanguageEdit("activate", "zh", "mean", 8.0)]):
            during = model(**enc).logits
        after = model(**enc).logits
    assert not torch.equal(before, during)
    assert torch.equal(before, after)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL recording needs two CUDA devices")
def test_two_nccl_processes_match_one(tiny_model_dir, tiny_corpus_dir, tmp_path):
    common = ["--model", tiny_model_dir, "--corpus", tiny_corpus_dir, "--device", "cuda", "--chunk-size", "2",
              "--sentence-means", "--no-progress"]
    cmd = [sys.executable, "-m", "langneuron_eval.cli.main", "record", *map(str, common)]
    subprocess.run([*cmd, "--out", str(tmp_path / "one.safetensors")], check=True, capture_output=True)
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "langneuron_eval.cli.main", "record", *map(str, common),
                          "--out", str(tmp_path / "two.safetensors")],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-2000:]
    one, two = ActivationStats.load(tmp_path / "one.safetensors"), ActivationStats.load(tmp_path / "two.safetensors")
    assert torch.equal(one.n_tokens, two.n_tokens)
    assert torch.equal(one.positive_counts, two.positive_counts)
    assert torch.equal(one.sentence_means, two.sentence_means)
    torch.testing.assert_close(one.activation_sums, two.activation_sums, rtol=0, atol=0)  # summed in chunk order
