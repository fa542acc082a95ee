"""A mixture-of-experts variant of the demo model: language-specific experts and neurons inside experts.

The MoE model is made from the shipped dense demo model (langneuron_eval/assets/demo-base) by splitting each
MLP into experts ("MoEfication"): a Mixtral model of the same shape and tokenizer whose attention, norms and
embeddings are the dense model's, whose expert e holds units e*F .. (e+1)*F-1 of the dense MLP, and whose
routers start random. A short training run on the demo corpus's training split (``train_demo.train``, the
dense model's own training loop, all weights trained) then teaches the routers which slices a token needs.
It is budgeted in tokens (``--train-tokens``); the default takes about two minutes on one CPU core and
leaves the model worse than the dense one (the held-out perplexities printed say by how much): a small
model for the mechanics, trained like the dense one but for a fraction of its budget.

Then, on that model: record the demo corpus's detection split, find whole language-specific experts
(``lape_experts``, routing shares) and language-specific units inside the experts (``lape``, per-expert
denominator), and measure both:

* **deactivation**: per-token NLL change of each language's held-out sentences when language X's experts are
  banned from the router / X's expert units are set to 0 (mean over sentences, t interval, n sentences);
* **steering**: share of sampled generations (from the BOS token, temperature 0.8, Kojima et al.'s setup)
  whose fastText LID label is the target, without and with the target's experts forced in the router / its
  expert units activated (mean activation x 12, as the dense demo; other languages' units set to 0), Wilson
  intervals, n generations.

Everything is written under ``--out`` (the model, the corpus, the statistics, both neuron files and
``summary.json``), so the same steps can be re-run from the command line (docs/moe.md).

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/moe_demo.py --out /tmp/moe_demo
    PYTHONPATH=. python benchmarks/moe_demo.py --smoke            # a few seconds: checks the wiring only
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from langneuron_eval import demo_corpus, lid
from langneuron_eval.core import demo_assets
from langneuron_eval.core.corpus import resolve_corpus
from langneuron_eval.core.interventions import Intervention, LanguageEdit
from langneuron_eval.core.moe_units import moe_units
from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.core.recorder import RecordConfig, record
from langneuron_eval.detectors import run_detector
from langneuron_eval.evidence.intervals import Interval, mean_interval, rate_interval
from langneuron_eval.fileio import jsonable, write_json
from langneuron_eval.languages import DEMO_LANGUAGES
from langneuron_eval.pipelines.train_demo import TrainConfig, perplexity, train


@dataclass
class MoEDemoConfig:
    """Sizes of one run; the defaults are the documented run (docs/moe.md), ``smoke()`` checks the wiring."""

    experts: int = 8
    top_k: int = 2
    train_tokens: int = 400_000
    lr: float = 1e-3
    detect_sentences: int = 300  # per language, detection split
    eval_sentences: int = 100  # per language, evaluation split (deactivation)
    generations: int = 40  # sampled generations per condition (steering)
    new_tokens: int = 32
    strength: float = 12.0  # expert units: activate to mean x strength (as the dense demo)
    expert_params: str = "top_rate=0.0625,per_language_quota=true"  # 2 of 32 experts per language
    unit_params: str = "top_rate=0.01,per_language_quota=true"
    seed: int = 0

    @classmethod
    def smoke(cls) -> MoEDemoConfig:
        return cls(experts=4, train_tokens=2_000, detect_sentences=20, eval_sentences=5, generations=4,
                   new_tokens=4, expert_params="top_rate=0.125,per_language_quota=true")


def params(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(",") if item)


# ------------------------------------------------------------------------------------------ the model
def split_into_experts(dense: Any, experts: int, top_k: int, seed: int) -> Any:
    """A Mixtral model whose expert e is units ``e*F .. (e+1)*F-1`` of ``dense``'s MLP (F = width / experts).

    Everything else is ``dense``'s, the routers are random. The dense MLP is the sum of its slices; a token
    gets ``top_k`` of them with routing weights summing to 1, so each expert's down projection is scaled by
    ``experts / top_k`` to keep the output's scale (the function changes; the short training run adapts it).
    """
    from transformers import MixtralConfig, MixtralForCausalLM

    c = dense.config
    if c.intermediate_size % experts:
        raise ValueError(f"{experts} experts do not divide the MLP width {c.intermediate_size}")
    width = c.intermediate_size // experts
    cfg = MixtralConfig(
        vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=width,
        num_hidden_layers=c.num_hidden_layers, num_attention_heads=c.num_attention_heads,
        num_key_value_heads=c.num_key_value_heads, head_dim=c.head_dim,
        max_position_embeddings=c.max_position_embeddings, rms_norm_eps=c.rms_norm_eps,
        rope_parameters=dict(c.rope_parameters), tie_word_embeddings=True, sliding_window=None,
        num_local_experts=experts, num_experts_per_tok=top_k, router_aux_loss_coef=0.0,
        bos_token_id=c.bos_token_id, eos_token_id=c.eos_token_id, pad_token_id=c.pad_token_id)
    torch.manual_seed(seed)
    moe = MixtralForCausalLM(cfg)  # routers: random init
    src = dense.state_dict()
    with torch.no_grad():
        for name, t in moe.state_dict().items():
            layer = name.split(".mlp.")[0]
            if name.endswith(".mlp.experts.gate_up_proj"):  # [E, 2F, hidden] = [gate; up] per expert
                gate = src[f"{layer}.mlp.gate_proj.weight"].reshape(experts, width, -1)  # [E, F, hidden]
                up = src[f"{layer}.mlp.up_proj.weight"].reshape(experts, width, -1)
                t.copy_(torch.cat([gate, up], dim=1))
            elif name.endswith(".mlp.experts.down_proj"):  # [E, hidden, F]
                down = src[f"{layer}.mlp.down_proj.weight"]  # [hidden, E*F]
                t.copy_(down.reshape(down.shape[0], experts, width).transpose(0, 1) * (experts / top_k))
            elif name in src:
                t.copy_(src[name])
    return moe.eval()


def build_model(cfg: MoEDemoConfig, out: Path, log: Any) -> tuple[Any, Any, dict[str, Any]]:
    """Split the dense MLPs into experts, train briefly, save under ``out/model``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = demo_assets.base_model_path()
    dense, tok = AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    moe = split_into_experts(dense, cfg.experts, cfg.top_k, cfg.seed)
    log(f"split the dense MLPs into {cfg.experts} experts x {moe.config.intermediate_size} units, top-{cfg.top_k}")
    texts = [t for lang in DEMO_LANGUAGES for t in demo_corpus.sentences(lang, "train", 5000, seed=cfg.seed)]
    report = train(moe, tok, texts, TrainConfig(tokens=cfg.train_tokens, lr=cfg.lr, warmup=10, seed=cfg.seed),
                   progress=False)
    log(f"trained {report['tokens']} tokens in {report['steps']} steps ({report['seconds']} s), "
        f"final loss {report['final_loss']}")
    ppl = {}
    for lang in DEMO_LANGUAGES:
        held_out = demo_corpus.sentences(lang, "eval", cfg.eval_sentences, seed=cfg.seed)
        ppl[lang] = {"dense": round(perplexity(dense, tok, held_out), 3), "moe": round(perplexity(moe, tok, held_out), 3)}
    log("held-out perplexity (dense -> MoE): " + ", ".join(f"{k} {v['dense']} -> {v['moe']}" for k, v in ppl.items()))
    moe.save_pretrained(out / "model")
    tok.save_pretrained(out / "model")
    return moe, tok, {"train": report, "perplexity": ppl}


# ------------------------------------------------------------------------------------------ detection
def detect(model: Any, tok: Any, cfg: MoEDemoConfig, out: Path, log: Any) -> tuple[NeuronFile, NeuronFile]:
    """Record the detection split, then whole experts (lape_experts) and expert units (lape)."""
    corpus = out / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for lang in DEMO_LANGUAGES:
        lines = demo_corpus.sentences(lang, "detect", cfg.detect_sentences, seed=cfg.seed)
        (corpus / f"{lang}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sources = resolve_corpus([str(corpus)], list(DEMO_LANGUAGES))
    stats = record(model, tok, sources, RecordConfig(batch_size=16), progress=False)
    stats.save(out / "stats.safetensors", force=True)
    routed = stats.routing["expert_routed_tokens"]  # [K, L_moe, E]
    share = routed.double() / stats.n_tokens.double()[:, None, None]
    log(f"recorded {dict(zip(stats.languages, stats.n_tokens.tolist()))} tokens; routing share of each "
        f"language's tokens, per MoE layer and expert (sums to top-k = {cfg.top_k}):")
    for k, lang in enumerate(stats.languages):
        log(f"  {lang}: " + " | ".join(" ".join(f"{x:.2f}" for x in row) for row in share[k].tolist()))
    experts = run_detector("lape_experts", stats, params(cfg.expert_params))
    experts.save(out / "experts.json", force=True)
    units = run_detector("lape", stats, params(cfg.unit_params))
    units.save(out / "neurons.json", force=True)
    layout = moe_units(stats.fingerprint)
    log(f"lape_experts ({cfg.expert_params}): (decoder layer, expert) and the language's routing share")
    for lang, pairs in experts.languages.items():
        shares = experts.extra["routing_probability"][lang]
        log(f"  {lang}: " + (", ".join(f"({a}, {b}) {shares[f'{a}:{b}']:.2f}" for a, b in pairs) or "none"))
    log(f"lape ({cfg.unit_params}): units inside experts per language, and how many experts hold them")
    for lang, pairs in units.languages.items():
        kinds = [layout.describe_unit(a, b) for a, b in pairs]
        holders = {(a, kind[1]) for (a, _), kind in zip(pairs, kinds) if kind[0] == "expert"}
        log(f"  {lang}: {len(pairs)} units in {len(holders)} experts")
    return experts, units


# ------------------------------------------------------------------------------------------ measurements
@torch.no_grad()
def doc_nll(model: Any, tok: Any, texts: list[str], batch_size: int = 25) -> torch.Tensor:
    """[docs] mean NLL per predicted token of each text (nats)."""
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tok(texts[start: start + batch_size], return_tensors="pt", padding=True)
        logits = model(**enc).logits[:, :-1].float()  # [batch, pos-1, vocab]
        target, mask = enc["input_ids"][:, 1:], enc["attention_mask"][:, 1:].bool()  # [batch, pos-1]
        nll = -F.log_softmax(logits, -1).gather(-1, target[..., None])[..., 0]
        out.append((nll * mask).sum(1) / mask.sum(1).clamp(min=1))
    return torch.cat(out)


def deactivation(model: Any, tok: Any, files: dict[str, NeuronFile], cfg: MoEDemoConfig) -> dict[str, Any]:
    """ΔNLL per token of each language's held-out texts when language X's experts/units are deactivated."""
    texts = {lang: demo_corpus.sentences(lang, "eval", cfg.eval_sentences, seed=cfg.seed) for lang in DEMO_LANGUAGES}
    base = {lang: doc_nll(model, tok, t) for lang, t in texts.items()}
    result: dict[str, Any] = {}
    for name, neurons in files.items():
        rows = {}
        for x in DEMO_LANGUAGES:
            if not neurons.languages.get(x):
                continue
            with Intervention(model, neurons, [LanguageEdit("deactivate", x)]):
                rows[x] = {lang: mean_interval((doc_nll(model, tok, t) - base[lang]).numpy())
                           for lang, t in texts.items()}
        result[name] = rows
    return result


@torch.no_grad()
def sample(model: Any, tok: Any, cfg: MoEDemoConfig) -> list[str]:
    """``generations`` continuations of the BOS token, sampled at temperature 0.8 with a fixed seed."""
    torch.manual_seed(cfg.seed)
    ids = torch.full((cfg.generations, 1), tok.bos_token_id, dtype=torch.long)
    gen = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.8,
                         top_k=0, top_p=1.0, max_new_tokens=cfg.new_tokens, pad_token_id=tok.pad_token_id)
    return tok.batch_decode(gen[:, 1:], skip_special_tokens=True)


def steering_edits(name: str, lang: str, strength: float) -> list[LanguageEdit]:
    """Experts: force the router onto the target's experts. Units: the dense demo's rule (activate + others off)."""
    if name == "experts":
        return [LanguageEdit("activate", lang)]
    return [LanguageEdit("activate", lang, "mean", strength)] + [
        LanguageEdit("deactivate", o) for o in DEMO_LANGUAGES if o != lang]


def steering(model: Any, tok: Any, files: dict[str, NeuronFile], cfg: MoEDemoConfig) -> dict[str, Any]:
    """LID share of the target language in sampled generations, unsteered and steered, per file."""
    plain = lid.detect_many(sample(model, tok, cfg))
    result: dict[str, Any] = {"unsteered": {lang: rate_interval(plain.count(lang), len(plain))
                                            for lang in DEMO_LANGUAGES}}
    for name, neurons in files.items():
        result[name] = {}
        for lang in DEMO_LANGUAGES:
            if not neurons.languages.get(lang):
                continue
            iv = Intervention(model, neurons, steering_edits(name, lang, cfg.strength))
            with iv, iv.generating():
                labels = lid.detect_many(sample(model, tok, cfg))
            result[name][lang] = rate_interval(labels.count(lang), len(labels))
    return result


# ------------------------------------------------------------------------------------------ report
def fmt(iv: Interval, digits: int = 2, pct: bool = False) -> str:
    f = 100.0 if pct else 1.0
    if not iv.defined:
        return f"{iv.value * f:.{digits}f}"
    return f"{iv.value * f:+.{digits}f} [{iv.low * f:+.{digits}f}, {iv.high * f:+.{digits}f}]" if not pct else \
        f"{iv.value * f:.0f}% [{iv.low * f:.0f}, {iv.high * f:.0f}]"


def report(deact: dict[str, Any], steer: dict[str, Any], cfg: MoEDemoConfig, log: Any) -> None:
    for name, rows in deact.items():
        log(f"deactivate X's {name}: mean ΔNLL per token (nats) of each language's held-out sentences, "
            f"95% t interval, n = {cfg.eval_sentences} sentences per language")
        log("  X \\ text  " + "  ".join(f"{lang:>22}" for lang in DEMO_LANGUAGES))
        for x, cells in rows.items():
            log(f"  {x:>8}  " + "  ".join(f"{fmt(cells[lang]):>22}" for lang in DEMO_LANGUAGES))
    log(f"steering: share of {cfg.generations} sampled generations whose LID label is the target, "
        "95% Wilson interval")
    log("  target  unsteered        " + "  ".join(f"{name:>18}" for name in deact))
    for lang in DEMO_LANGUAGES:
        cells = [fmt(steer[name][lang], pct=True) if lang in steer[name] else "no units" for name in deact]
        log(f"  {lang:>6}  {fmt(steer['unsteered'][lang], pct=True):<16} " + "  ".join(f"{c:>18}" for c in cells))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("moe_demo"))
    ap.add_argument("--train-tokens", type=int, default=MoEDemoConfig.train_tokens)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes: checks that every step runs")
    args = ap.parse_args(argv)
    cfg = MoEDemoConfig.smoke() if args.smoke else MoEDemoConfig(train_tokens=args.train_tokens)
    args.out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    started = time.perf_counter()

    def log(line: str) -> None:
        print(line, flush=True)

    model, tok, built = build_model(cfg, args.out, log)
    experts, units = detect(model, tok, cfg, args.out, log)
    files = {"experts": experts, "expert units": units}
    deact = deactivation(model, tok, files, cfg)
    steer = steering(model, tok, files, cfg)
    report(deact, steer, cfg, log)
    seconds = round(time.perf_counter() - started, 1)
    log(f"total {seconds} s; files under {args.out}")
    summary = {"config": asdict(cfg), "model": built, "seconds": seconds,
               "deactivation": {n: {x: {lang: iv.to_dict() for lang, iv in row.items()} for x, row in rows.items()}
                                for n, rows in deact.items()},
               "steering": {n: {lang: iv.to_dict() for lang, iv in r.items()} for n, r in steer.items()}}
    write_json(args.out / "summary.json", jsonable(summary), force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
