"""``langneuron sweep``: a grid of steering settings, chosen on a dev half and reported on a test half.

    langneuron sweep --model M --neurons N --langs en,zh --strengths 1,4 --limit 8 --out D
"""

from __future__ import annotations

import argparse
from pathlib import Path

from langneuron_eval.errors import LangNeuronError


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name, help="choose a steering setting per language on dev prompts, report it on test prompts",
        description="Steer each language with every setting of a grid (strength x value statistic x deactivating "
                    "the other languages x positions), judge the generations as text and by the unsteered model's "
                    "perplexity, choose per language (and once overall) the highest on-target-and-fluent rate "
                    "within the damage budget on the dev half, and report it on the test half beside a random-unit "
                    "and an other-language control. Writes sweep.json, sweep.png and sweep.md into --out "
                    "(docs/steering_quality.md).")
    p.add_argument("--model", default=None, help="model directory or hub id (default: the shipped demo model)")
    p.add_argument("--neurons", help="neuron file from `langneuron detect` (required)")
    p.add_argument("--langs", default=None, help="comma-separated languages (default: every language of the file)")
    p.add_argument("--strengths", default="1,2,4", help="comma-separated strengths (default: 1,2,4)")
    p.add_argument("--values", default="mean", help="comma-separated value statistics: mean, median, pNN or numbers "
                                                    "(default: mean)")
    p.add_argument("--deactivate-others", default="no,yes", metavar="no,yes",
                   help="whether to zero the other languages' neurons: no, yes or both (default: no,yes)")
    p.add_argument("--positions", default="all", help="comma-separated: all, generated (default: all)")
    p.add_argument("--family", default="lang_steer", help="lang_steer (BOS prompt) or lang_steer_prompted (neutral "
                                                          "prompts, split between the halves)")
    p.add_argument("--limit", type=int, default=20, help="generations per language and half (default: 20)")
    p.add_argument("--max-gen-toks", type=int, default=None,
                   help="tokens generated per prompt (default: the task's own, 64)")
    p.add_argument("--max-distinct-drop", type=float, default=0.1,
                   help="damage budget: largest drop of mean distinct-2 below the unsteered model's (default 0.1)")
    p.add_argument("--max-judge-ratio", type=float, default=2.0,
                   help="damage budget: largest median judge perplexity ratio (default 2)")
    p.add_argument("--judge-reference", default="unsteered",
                   help="what the judge ratio divides by: the unsteered generations (default) or held-out text in "
                        "the target language, for models that write one language by themselves (docs/steering_quality.md)")
    p.add_argument("--judge-corpus", default=None, metavar="SPEC",
                   help="with --judge-reference heldout: held-out text as a `record --corpus` spec (default: the "
                        "lang_ppl tasks' text, which ships for the demo languages)")
    p.add_argument("--no-controls", action="store_true", help="skip the random-unit and other-language controls")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--out", help="output folder (required)")
    p.add_argument("--force", action="store_true", help="use a non-empty --out folder, replacing its files")
    p.set_defaults(func=run)


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise LangNeuronError(f"{flag} takes comma-separated numbers, got {text!r}") from None
    if not values:
        raise LangNeuronError(f"{flag} is empty")
    return values


def _words(text: str, flag: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(x.strip() for x in text.split(",") if x.strip()))
    if not values:
        raise LangNeuronError(f"{flag} is empty")
    return values


def _yes_no(text: str) -> tuple[bool, ...]:
    table = {"no": False, "false": False, "0": False, "yes": True, "true": True, "1": True}
    words = _words(text, "--deactivate-others")
    bad = [w for w in words if w.lower() not in table]
    if bad:
        raise LangNeuronError(f"--deactivate-others takes no, yes or no,yes, got {bad[0]!r}")
    return tuple(dict.fromkeys(table[w.lower()] for w in words))


def build_config(args: argparse.Namespace, neurons: object) -> object:
    """A checked :class:`SweepConfig` from the arguments (one line on the first bad one)."""
    from langneuron_eval.languages import normalize_many
    from langneuron_eval.pipelines.sweep import DamageBudget, SweepConfig, SweepGrid

    langs = tuple(normalize_many(args.langs)) if args.langs else tuple(neurons.languages)
    grid = SweepGrid(strengths=_floats(args.strengths, "--strengths"), values=_words(args.values, "--values"),
                     deactivate_others=_yes_no(args.deactivate_others),
                     positions=_words(args.positions, "--positions"))
    if args.max_distinct_drop < 0 or args.max_judge_ratio <= 0:
        raise LangNeuronError("--max-distinct-drop must be >= 0 and --max-judge-ratio > 0")
    if args.batch_size < 1:
        raise LangNeuronError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.max_gen_toks is not None and args.max_gen_toks < 1:
        raise LangNeuronError(f"--max-gen-toks must be at least 1, got {args.max_gen_toks}")
    cfg = SweepConfig(langs=langs, grid=grid, budget=DamageBudget(args.max_distinct_drop, args.max_judge_ratio),
                      limit=args.limit, family=args.family, batch_size=args.batch_size, controls=not args.no_controls,
                      max_gen_toks=args.max_gen_toks, judge_reference=args.judge_reference,
                      judge_corpus=args.judge_corpus)
    cfg.validate(neurons)
    return cfg


def run(args: argparse.Namespace) -> int:
    from langneuron_eval.core.demo_assets import base_model_path
    from langneuron_eval.core.modeling import check_model_path
    from langneuron_eval.core.neurons import NeuronFile
    from langneuron_eval.fileio import check_output_dir
    from langneuron_eval.leaderboard.sweep_view import render_markdown
    from langneuron_eval.pipelines.sweep import run_sweep

    if not args.neurons:
        raise LangNeuronError("--neurons is required (a neuron file from `langneuron detect`)")
    if not args.out:
        raise LangNeuronError("--out is required (the folder for sweep.json, sweep.png and sweep.md)")
    out = check_output_dir(args.out, args.force)
    neurons = NeuronFile.load(args.neurons)
    cfg = build_config(args, neurons)
    model = args.model or str(base_model_path())
    check_model_path(model, None)
    doc = run_sweep(model, Path(args.neurons), cfg, out, device=args.device, dtype=args.dtype, force=True)
    print(render_markdown(doc), end="")
    print(f"wrote {out / 'sweep.json'}, {out / 'sweep.png'} and {out / 'sweep.md'}")
    return 0
