"""``langneuron sweep``: choose a steering setting on a dev half, report it on a test half, with controls.

For one model and one neuron file, every setting of a grid (strength x value statistic x "deactivate the other
languages" x positions) steers each language's ``lang_steer`` task on the **dev** half; each generation is judged
as text (:mod:`langneuron_eval.lmeval.text_quality`) and by the **unsteered** model (its perplexity over the
generation, as a ratio to the median of the unsteered generations, or with ``judge_reference="heldout"`` of held-out
text in the target language: the judge ratio). Per language, and once
for all languages, the setting with the highest combined success (``on_target_fluent`` with the judge ratio)
within the :class:`DamageBudget` is chosen on dev and run again on the **test** half -- the other half of the
neutral prompts (``lang_steer_prompted``) and another torch seed -- beside two controls at the same setting:
random units with the detector's per-layer counts, and another language's neurons. One model load; the
intervention is switched between runs. docs/steering_quality.md describes the protocol.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from langneuron_eval.core.neurons import NeuronFile
from langneuron_eval.errors import LangNeuronError
from langneuron_eval.evidence import mean_interval, paired_rate_gain, rate_interval
from langneuron_eval.fileio import atomic_path, jsonable, sha256_file, write_json
from langneuron_eval.leaderboard.sweep_view import render_markdown
from langneuron_eval.lmeval import evaluation, text_quality
from langneuron_eval.lmeval.catalogue import STEER_FAMILIES, STEER_FAMILY, steer_task

SCHEMA = "langneuron-eval/sweep"
SCHEMA_VERSION = 1
HALVES = ("dev", "test")
# dev: lm-eval's default seeds; test: another torch seed, so that the test generations are fresh samples
SEEDS = {"dev": evaluation.DEFAULT_SEEDS, "test": (0, 1234, 4321, 1234)}
RATES = ("lang_rate", "on_target_fluent", "degenerate")  # 0/1 per generation: Wilson intervals
MEANS = ("line_pass_rate", "word_pass_rate", "distinct_2", "repetition_4", "compression_ratio")  # t intervals
BOUNDED = ("line_pass_rate", "word_pass_rate", "distinct_2", "repetition_4")  # in [0, 1]: intervals clipped
JUDGE_REFERENCES = ("unsteered", "heldout")
Log = Callable[[str], None]


@dataclass(frozen=True)
class Setting:
    """One steering intervention, applied to the target language's neurons."""

    strength: float = 1.0
    value: str = "mean"
    deactivate_others: bool = False
    positions: str = "all"

    @property
    def key(self) -> str:
        return (f"{self.value} x{self.strength:g}{', others off' if self.deactivate_others else ''}"
                f"{'' if self.positions == 'all' else ', ' + self.positions}")

    def intervention(self, lang: str) -> dict[str, Any]:
        """``set_intervention`` arguments that steer towards ``lang`` with this setting."""
        return {"mode": "activate", "lang": lang, "value": self.value, "strength": self.strength,
                "positions": self.positions, "deactivate": "others" if self.deactivate_others else None}


@dataclass
class SweepGrid:
    """The settings tried: every combination of the four lists (the default is 3 x 1 x 2 x 1 = 6)."""

    strengths: tuple[float, ...] = (1.0, 2.0, 4.0)
    values: tuple[str, ...] = ("mean",)
    deactivate_others: tuple[bool, ...] = (False, True)
    positions: tuple[str, ...] = ("all",)

    def settings(self) -> list[Setting]:
        return [Setting(s, v, d, p) for s in self.strengths for v in self.values for d in self.deactivate_others
                for p in self.positions]


@dataclass
class DamageBudget:
    """How much damage a chosen setting may do, measured against the unsteered generations of the same half.

    A setting is within budget for a language when its mean distinct-2 is at most ``max_distinct_2_drop`` below
    the unsteered mean, and the median judge ratio (perplexity of its generations under the unsteered model /
    median of the unsteered generations') is at most ``max_judge_ppl_ratio``.
    """

    max_distinct_2_drop: float = 0.1
    max_judge_ppl_ratio: float = 2.0

    def check(self, point: dict[str, Any], unsteered: dict[str, Any]) -> list[str]:
        """The budget's violated bounds (empty: within budget)."""
        broken = []
        drop = unsteered["distinct_2"]["value"] - point["distinct_2"]["value"]
        if not drop <= self.max_distinct_2_drop:
            broken.append(f"distinct-2 drops by {drop:.2f} > {self.max_distinct_2_drop:g}")
        ratio = point["judge_ppl_median"]
        if not ratio <= self.max_judge_ppl_ratio:
            broken.append(f"median judge ratio {ratio:.2f} > {self.max_judge_ppl_ratio:g}")
        return broken


@dataclass
class SweepConfig:
    langs: tuple[str, ...]
    grid: SweepGrid = field(default_factory=SweepGrid)
    budget: DamageBudget = field(default_factory=DamageBudget)
    limit: int = 20  # generations per language, per half
    family: str = STEER_FAMILY
    batch_size: int = 8
    confidence: float = 0.95
    controls: bool = True
    seed: int = 0  # of the random-unit control
    max_gen_toks: int | None = None  # None: the task's own generation length
    # what the judge ratio divides by: the unsteered generations' median judge perplexity ("unsteered"), or the
    # median over held-out text in the target language cut to the generation length ("heldout"; its corpus: the
    # lang_ppl tasks', or judge_corpus, a `record --corpus` spec)
    judge_reference: str = "unsteered"
    judge_corpus: str | None = None

    @property
    def gen_kwargs(self) -> dict[str, Any] | None:
        return None if self.max_gen_toks is None else {"max_gen_toks": self.max_gen_toks}

    def validate(self, neurons: NeuronFile) -> None:
        """One line naming the first bad choice, before any model is loaded."""
        if self.family not in STEER_FAMILIES:
            raise LangNeuronError(f"--family must be one of {', '.join(STEER_FAMILIES)}, got {self.family!r}")
        if self.limit < 2:
            raise LangNeuronError(f"--limit must be at least 2 (generations per half), got {self.limit}")
        self._validate_judge()
        missing = [lang for lang in self.langs if lang not in neurons.languages]
        if missing:
            raise LangNeuronError(f"language {missing[0]!r} is not in the neuron file (it has "
                                  f"{', '.join(neurons.languages)})")
        for setting in self.grid.settings():
            if not (math.isfinite(setting.strength) and setting.strength > 0):
                raise LangNeuronError(f"strengths must be positive numbers, got {setting.strength!r}")
            if setting.positions not in ("all", "generated"):
                raise LangNeuronError(f"positions must be all or generated, got {setting.positions!r}")
            for lang in self.langs:
                _check_value(neurons, lang, setting.value)

    def _validate_judge(self) -> None:
        """The judge reference's choices, and held-out text for every language when it is ``heldout``."""
        from langneuron_eval.core.corpus import resolve_corpus
        from langneuron_eval.languages import DEMO_LANGUAGES

        if self.judge_reference not in JUDGE_REFERENCES:
            raise LangNeuronError(f"--judge-reference must be one of {', '.join(JUDGE_REFERENCES)}, "
                                  f"got {self.judge_reference!r}")
        if self.judge_corpus and self.judge_reference != "heldout":
            raise LangNeuronError("--judge-corpus is the text of --judge-reference heldout; add that option")
        if self.judge_reference != "heldout":
            return
        if self.judge_corpus:
            resolve_corpus([self.judge_corpus], list(self.langs))  # one line naming a missing language or path
            return
        missing = [lang for lang in self.langs if lang not in DEMO_LANGUAGES]
        if missing:
            raise LangNeuronError(f"no held-out text ships for {missing[0]}; give the judge reference's text with "
                                  f"--judge-corpus {missing[0]}=path/to/{missing[0]}.txt (or a folder of <lang>.txt)")


def _check_value(neurons: NeuronFile, lang: str, value: str) -> None:
    try:
        float(value)
    except ValueError:
        neurons.value_table(lang, value)  # raises one line when the file lacks the statistic


# ------------------------------------------------------------------------------------ one run


@dataclass
class _Runner:
    """Runs one (intervention, language, half) and summarises it; holds the loaded model and task managers."""

    lm: Any
    neurons_path: Path
    cfg: SweepConfig
    managers: dict[str, Any]
    log: Log
    reference: dict[tuple[str, str], float] = field(default_factory=dict)  # (half, lang) -> unsteered median
    gen_toks: dict[str, int] = field(default_factory=dict)  # task -> max_gen_toks its generations ran with

    def generate(self, lang: str, half: str, intervention: dict[str, Any], neurons: Path | None = None) -> list[dict]:
        """Per generation: prompt, text, lm-eval's per-sample metrics and the judge perplexity."""
        self.lm.set_intervention(**intervention, neurons=str(neurons or self.neurons_path))
        task = steer_task(lang, self.cfg.family)
        res = evaluation.evaluate(self.lm, [task], limit=self.cfg.limit, task_manager=self.managers[half],
                                  seeds=SEEDS[half], log_samples=True, bootstrap_iters=0, environment=False,
                                  gen_kwargs=self.cfg.gen_kwargs)
        samples = sorted(res["samples"][task], key=lambda s: s["doc_id"])
        self.gen_toks[task] = int(res["configs"][task]["generation_kwargs"]["max_gen_toks"])
        self.lm.set_intervention(mode="none")  # the judge is the unsteered model
        rows = [{"prompt": s["arguments"][0][0], "text": s["filtered_resps"][0],
                 **{m: float(s[m]) for m in (*RATES, *MEANS)}} for s in samples]
        for row, ppl in zip(rows, judge_perplexities(self.lm, [r["prompt"] for r in rows], [r["text"] for r in rows])):
            row["judge_ppl"] = ppl
        return rows

    def summary(self, lang: str, half: str, rows: list[dict]) -> dict[str, Any]:
        """Every metric with its interval; success re-judged with the judge ratio."""
        ratios = [r["judge_ppl"] / self.reference[(half, lang)] if math.isfinite(r["judge_ppl"]) else math.nan
                  for r in rows]
        success = [float(r["on_target_fluent"] == 1.0 and math.isfinite(q) and q <= text_quality.MAX_JUDGE_PPL_RATIO)
                   for r, q in zip(rows, ratios)]
        c = self.cfg.confidence
        out: dict[str, Any] = {m: rate_interval(int(sum(r[m] for r in rows)), len(rows), c).to_dict() for m in RATES}
        out["on_target_fluent"] = rate_interval(int(sum(success)), len(rows), c).to_dict()
        out.update({m: _mean(m, [r[m] for r in rows], c) for m in MEANS})
        out["judge_ppl"] = mean_interval(ratios, c).to_dict()
        finite = [q for q in ratios if math.isfinite(q)]
        out["judge_ppl_median"] = statistics.median(finite) if finite else math.nan
        out["outcomes"] = {"lang_rate": [r["lang_rate"] for r in rows], "on_target_fluent": success}
        return out


def _mean(metric: str, values: list[float], confidence: float) -> dict[str, Any]:
    """t interval of a per-generation mean; clipped to [0, 1] for the metrics that cannot leave it."""
    out = mean_interval(values, confidence).to_dict()
    if metric in BOUNDED and math.isfinite(out["ci_low"]) and math.isfinite(out["ci_high"]):
        out["ci_low"], out["ci_high"] = max(0.0, out["ci_low"]), min(1.0, out["ci_high"])
    return out


def judge_perplexities(lm: Any, prompts: Sequence[str], texts: Sequence[str]) -> list[float]:
    """Perplexity of each text given its prompt under ``lm`` as it is now (the caller switches steering off).

    exp(mean negative log-likelihood of the generation's tokens), the context being what generation started
    from (the prompt, or the BOS token for an empty one), scored one generation at a time through the model's
    forward pass. An empty generation has no perplexity (NaN).
    """
    out = [math.nan] * len(texts)
    for i, (prompt, text) in enumerate(zip(prompts, texts)):
        cont = lm.tok_encode(text, add_special_tokens=False) if text else []
        if not cont:
            continue
        ctx = lm.tok_encode(prompt) if prompt else [lm.prefix_token_id]
        ids = torch.tensor([ctx + cont], dtype=torch.long, device=lm.device)  # [1, ctx + cont]
        with torch.no_grad():
            logits = lm._model_call(ids)[0, len(ctx) - 1:-1].double()  # [cont, vocab]: predicts each cont token
        logp = torch.log_softmax(logits, dim=-1).gather(1, ids[0, len(ctx):, None].to(logits.device))
        out[i] = math.exp(-float(logp.mean()))
    return out


# ------------------------------------------------------------------------------------ the sweep


def random_control(neurons: NeuronFile, seed: int = 0) -> NeuronFile:
    """Random units with each language's per-layer counts, carrying that language's values in the same order.

    Units are drawn, per layer, among those the language's own set does not use, so the control shares none of
    its units; the values (mean, median, ...) are the detector's, so that "the same setting" sets the random
    units to the same activation levels.
    """
    rng = random.Random(seed)
    width = neurons.fingerprint.intermediate_size
    languages: dict[str, list[tuple[int, int]]] = {}
    values: dict[str, dict[str, list[float]]] = {}
    for lang, units in neurons.languages.items():
        drawn: list[tuple[int, int]] = []
        for layer in sorted({layer for layer, _ in units}):
            own = {u for lay, u in units if lay == layer}
            pool = [u for u in range(width) if u not in own] or list(range(width))
            drawn += [(layer, u) for u in sorted(rng.sample(pool, min(len(own), len(pool))))]
        languages[lang] = drawn  # sorted by layer, then unit, as NeuronFile keeps them
        values[lang] = {stat: list(vals) for stat, vals in neurons.values.get(lang, {}).items()}
    return NeuronFile(neurons.fingerprint, "random_control", languages,
                      params={"reference": neurons.detector, "seed": seed, "same_per_layer_counts": True},
                      values=values)


def other_language(lang: str, langs: Sequence[str], neurons: NeuronFile) -> str | None:
    """The language whose neurons steer towards ``lang`` in the other-language control: the next swept one."""
    pool = [x for x in [*langs, *neurons.languages] if x != lang]
    if not pool:
        return None
    if lang in langs and len(langs) > 1:
        return langs[(list(langs).index(lang) + 1) % len(langs)]
    return pool[0]


def choose(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The within-budget point with the highest dev success; ties go to the earlier (gentler) grid setting."""
    admissible = [(i, p) for i, p in enumerate(points) if not p["over_budget"]]
    if not admissible:
        return None
    return max(admissible, key=lambda ip: (ip[1]["dev"]["on_target_fluent"]["value"], -ip[0]))[1]


def choose_overall(points: list[dict[str, Any]], langs: Sequence[str]) -> Setting | None:
    """The setting within budget for every language with the highest mean dev success over languages."""
    best: tuple[float, int, Setting] | None = None
    for i, setting in enumerate(dict.fromkeys(p["setting_obj"] for p in points)):
        mine = [p for p in points if p["setting_obj"] == setting]
        if any(p["over_budget"] for p in mine) or {p["lang"] for p in mine} != set(langs):
            continue
        score = statistics.fmean(p["dev"]["on_target_fluent"]["value"] for p in mine)
        if best is None or (score, -i) > (best[0], -best[1]):
            best = (score, i, setting)
    return None if best is None else best[2]


def _strip(summary: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in summary.items() if k != "outcomes"}


def _test_report(runner: _Runner, lang: str, setting: Setting, unsteered: dict[str, Any],
                 random_path: Path | None) -> dict[str, Any]:
    """The chosen setting on the test half: its metrics, its gain over the unsteered model, and the controls."""
    c = runner.cfg.confidence
    test = runner.summary(lang, "test", runner.generate(lang, "test", setting.intervention(lang)))
    out: dict[str, Any] = {"test": _strip(test), "gain_vs_unsteered": {
        m: paired_rate_gain(unsteered["outcomes"][m], test["outcomes"][m], c).to_dict()
        for m in ("on_target_fluent", "lang_rate")}}
    if not runner.cfg.controls:
        return out
    controls: dict[str, Any] = {}
    if random_path is not None:
        runner.log(f"  control for {lang}: random units, same per-layer counts and setting")
        rows = runner.generate(lang, "test", setting.intervention(lang), neurons=random_path)
        controls["random_units"] = _control(runner, lang, rows, test, {"neurons": str(random_path)})
    other = other_language(lang, runner.cfg.langs, NeuronFile.load(runner.neurons_path))
    if other is not None:
        runner.log(f"  control for {lang}: {other}'s neurons, same setting")
        rows = runner.generate(lang, "test", setting.intervention(other))
        controls["other_language"] = _control(runner, lang, rows, test, {"neurons_of": other})
    out["controls"] = controls
    return out


def _control(runner: _Runner, lang: str, rows: list[dict], detector: dict[str, Any],
             what: dict[str, Any]) -> dict[str, Any]:
    summary = runner.summary(lang, "test", rows)
    gain = paired_rate_gain(summary["outcomes"]["on_target_fluent"], detector["outcomes"]["on_target_fluent"],
                            runner.cfg.confidence)
    return {**what, "test": _strip(summary), "detector_minus_control": gain.to_dict()}


def _unsteered(runner: _Runner, lang: str, half: str) -> dict[str, Any]:
    """The unsteered generations of a half: the reference of the damage budget and, by default, of the judge ratio."""
    rows = runner.generate(lang, half, {"mode": "none"})
    if runner.cfg.judge_reference == "heldout":
        budget = runner.gen_toks[steer_task(lang, runner.cfg.family)]
        runner.reference[(half, lang)] = heldout_reference(runner.lm, lang, [r["prompt"] for r in rows], budget,
                                                           runner.managers["heldout"])
    else:
        runner.reference[(half, lang)] = text_quality.reference_ppl(r["judge_ppl"] for r in rows)
    summary = runner.summary(lang, half, rows)
    summary["judge_ppl_reference"] = runner.reference[(half, lang)]
    return summary


def heldout_reference(lm: Any, lang: str, prompts: Sequence[str], budget: int, task_manager: Any) -> float:
    """Median judge perplexity of held-out ``lang`` text, cut to the generation length, after the half's prompts.

    With the unsteered generations as reference, a model that writes one language by itself finds fluent text in
    another language more perplexing than its own, so the ratio rises with the change of language, not only with
    damage. Real text in the target language, scored the same way, separates the two. One text per prompt (the
    lang_ppl documents of ``task_manager`` in order, cycled when there are fewer), each cut to ``budget`` tokens, the
    ``max_gen_toks`` the generations ran with.
    """
    from langneuron_eval.pipelines.measurements import ppl_documents

    texts = ppl_documents(task_manager, [lang], len(prompts))[lang]
    if not texts:
        raise LangNeuronError(f"no held-out {lang} text for the judge reference")
    cut = [lm.tok_decode(lm.tok_encode(texts[i % len(texts)], add_special_tokens=False)[:budget])
           for i in range(len(prompts))]
    return text_quality.reference_ppl(judge_perplexities(lm, prompts, cut))


def heldout_manager(cfg: SweepConfig) -> Any:
    """The task manager whose ``lang_ppl`` tasks read the held-out reference text (``judge_corpus`` when given)."""
    return evaluation.make_task_manager(metadata={"corpus": cfg.judge_corpus} if cfg.judge_corpus else None)


def _dev_points(runner: _Runner, unsteered: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    cfg = runner.cfg
    points = []
    settings = cfg.grid.settings()
    for i, setting in enumerate(settings, 1):
        for lang in cfg.langs:
            runner.log(f"dev {i}/{len(settings)}: {lang}, {setting.key}")
            dev = runner.summary(lang, "dev", runner.generate(lang, "dev", setting.intervention(lang)))
            broken = cfg.budget.check(dev, unsteered[lang])
            points.append({"lang": lang, "setting": asdict(setting), "key": setting.key, "setting_obj": setting,
                           "dev": _strip(dev), "over_budget": bool(broken), "budget_violations": broken})
    return points


def run_sweep(model: str, neurons_path: Path, cfg: SweepConfig, out: Path, *, device: str = "cpu",
              dtype: str = "float32", force: bool = False, log: Log = print) -> dict[str, Any]:
    """Run the sweep and write ``sweep.json``, ``sweep.png`` and ``sweep.md`` into ``out``; returns the document."""
    neurons = NeuronFile.load(neurons_path)
    cfg.validate(neurons)
    managers = {half: evaluation.make_task_manager(metadata={"corpus_half": half}) for half in HALVES}
    if cfg.judge_reference == "heldout":
        managers["heldout"] = heldout_manager(cfg)
    evaluation.check_tasks([steer_task(lang, cfg.family) for lang in cfg.langs], managers["dev"])
    random_path = None
    if cfg.controls:
        random_path = out / "controls" / "random_units.json"
        random_path.parent.mkdir(parents=True, exist_ok=True)
        random_control(neurons, cfg.seed).save(random_path, force=True)
    log(f"loading {model}")
    lm = evaluation.load_model(model, neurons_path, device=device, batch_size=cfg.batch_size, dtype=dtype)
    runner = _Runner(lm, Path(neurons_path), cfg, managers, log)
    unsteered = {half: {} for half in HALVES}
    for lang in cfg.langs:
        log(f"unsteered generations: {lang}")
        unsteered["dev"][lang] = _unsteered(runner, lang, "dev")
    points = _dev_points(runner, unsteered["dev"])
    chosen: dict[str, Any] = {}
    for lang in cfg.langs:
        unsteered["test"][lang] = _unsteered(runner, lang, "test")
        best = choose([p for p in points if p["lang"] == lang])
        if best is None:
            chosen[lang] = {"setting": None, "reason": "no setting is within the damage budget on dev"}
            continue
        log(f"test: {lang}, chosen {best['key']}")
        chosen[lang] = {"setting": best["setting"], "key": best["key"], "dev": best["dev"],
                        **_test_report(runner, lang, best["setting_obj"], unsteered["test"][lang], random_path)}
    overall = _overall(runner, points, chosen, unsteered["test"])
    doc = _document(model, neurons_path, neurons, cfg, unsteered, points, chosen, overall)
    write_json(out / "sweep.json", jsonable(doc), force=force)
    plot_sweep(out / "sweep.png", doc, force=force)
    with atomic_path(out / "sweep.md", force=force) as tmp:
        tmp.write_text(render_markdown(doc), encoding="utf-8")
    return doc


def _overall(runner: _Runner, points: list[dict[str, Any]], chosen: dict[str, Any],
             unsteered_test: dict[str, Any]) -> dict[str, Any]:
    """One setting for every language: chosen on dev, reported on test (reusing a language's own test run)."""
    setting = choose_overall(points, runner.cfg.langs)
    if setting is None:
        return {"setting": None, "reason": "no setting is within the damage budget for every language on dev"}
    test = {}
    for lang in runner.cfg.langs:
        if chosen[lang].get("setting") == asdict(setting):
            test[lang] = chosen[lang]["test"]
            continue
        runner.log(f"test: {lang}, overall setting {setting.key}")
        test[lang] = _strip(runner.summary(lang, "test", runner.generate(lang, "test", setting.intervention(lang))))
    dev = {p["lang"]: p["dev"] for p in points if p["setting_obj"] == setting}
    return {"setting": asdict(setting), "key": setting.key, "dev": dev, "test": test}


def _document(model: str, neurons_path: Path, neurons: NeuronFile, cfg: SweepConfig, unsteered: dict[str, Any],
              points: list[dict[str, Any]], chosen: dict[str, Any], overall: dict[str, Any]) -> dict[str, Any]:
    from langneuron_eval import __version__

    return {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "langneuron_eval_version": __version__,
        "model": str(model), "neurons": str(neurons_path), "neurons_sha256": sha256_file(neurons_path),
        "detector": neurons.detector, "family": cfg.family, "langs": list(cfg.langs),
        "limit_per_half": cfg.limit, "max_gen_toks": cfg.max_gen_toks, "confidence": cfg.confidence,
        "judge_reference": {"kind": cfg.judge_reference, "corpus": cfg.judge_corpus},
        "seeds": {half: evaluation.seeds_record(SEEDS[half]) for half in HALVES},
        "grid": asdict(cfg.grid), "budget": asdict(cfg.budget),
        "success_rule": {"max_judge_ppl_ratio": text_quality.MAX_JUDGE_PPL_RATIO,
                         "min_distinct_2": text_quality.MIN_DISTINCT_2,
                         "max_repetition_4": text_quality.MAX_REPETITION_4,
                         "max_compression_ratio": text_quality.MAX_COMPRESSION_RATIO},
        "unsteered": {half: {lang: _strip(s) for lang, s in by_lang.items()} for half, by_lang in unsteered.items()},
        "points": [{k: v for k, v in p.items() if k != "setting_obj"} for p in points],
        "chosen": chosen, "overall": overall,
    }


# ------------------------------------------------------------------------------------ figure


def plot_sweep(path: Path, doc: dict[str, Any], force: bool = False) -> None:
    """Success against damage on dev, one panel per language: every setting, the frontier, the chosen point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    langs = doc["langs"]
    fig, axes = plt.subplots(1, len(langs), figsize=(4.2 * len(langs), 4.2), squeeze=False)
    bound = doc["budget"]["max_judge_ppl_ratio"]
    for ax, lang in zip(axes[0], langs):
        pts = [p for p in doc["points"] if p["lang"] == lang]
        xs = [p["dev"]["judge_ppl_median"] for p in pts]
        ys = [p["dev"]["on_target_fluent"]["value"] for p in pts]
        for p, x, y in zip(pts, xs, ys):  # the gap between lang_rate and success: what the quality checks removed
            ax.plot([x, x], [y, p["dev"]["lang_rate"]["value"]], color="tab:gray", linewidth=0.6, zorder=1)
        inside = [not p["over_budget"] for p in pts]
        ax.scatter([x for x, ok in zip(xs, inside) if ok], [y for y, ok in zip(ys, inside) if ok], marker="o",
                   color="tab:blue", zorder=3, label="success, within budget")
        ax.scatter([x for x, ok in zip(xs, inside) if not ok], [y for y, ok in zip(ys, inside) if not ok],
                   marker="x", color="tab:gray", zorder=3, label="success, over budget")
        ax.scatter(xs, [p["dev"]["lang_rate"]["value"] for p in pts], marker=".", color="tab:orange", zorder=2,
                   label="lang_rate")
        frontier = _frontier(list(zip(xs, ys)))
        if frontier:
            ax.step(*zip(*frontier), where="post", color="tab:blue", alpha=0.4)
        pick = doc["chosen"].get(lang, {})
        if pick.get("setting"):
            cx, cy = pick["dev"]["judge_ppl_median"], pick["dev"]["on_target_fluent"]["value"]
            ax.scatter([cx], [cy], marker="*", s=220, facecolor="none", edgecolor="tab:red", linewidth=1.5,
                       zorder=4, label="chosen")
            ax.annotate(pick["key"], (cx, cy), fontsize=7, xytext=(6, 6), textcoords="offset points")
        ax.axvline(bound, color="tab:red", linestyle=":", linewidth=1, label="budget (judge ratio)")
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{lang}: dev, n={doc['limit_per_half']} per setting")
        ax.set_xlabel("median judge perplexity ratio (unsteered = 1)")
        ax.set_ylabel("share of generations")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    with atomic_path(path, force=force) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def _frontier(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The success-vs-damage frontier: for increasing damage, the points that raise the best success so far."""
    best, out = -1.0, []
    for x, y in sorted(p for p in points if math.isfinite(p[0])):
        if y > best:
            out.append((x, y))
            best = y
    return out
