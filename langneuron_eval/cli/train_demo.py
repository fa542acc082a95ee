"""``langneuron train-demo``: train the embedded demo model (or, with --align, its aligned twin)."""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
from pathlib import Path

from langneuron_eval.errors import LangNeuronError
from langneuron_eval.fileio import check_output_dir, write_json

ALIGN_LANGS = ("zh", "de")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="train the tiny demo model from the demo corpus (seeded)",
                       description="Train a small Llama-architecture LM and byte-level BPE tokenizer from scratch on "
                                   "the demo corpus; with --align, fine-tune a trained base model on question "
                                   "answering in two languages only.")
    p.add_argument("--out", required=True, help="output model directory")
    p.add_argument("--align", action="store_true", help="fine-tune --base on QA in --align-langs (the aligned twin)")
    p.add_argument("--base", default=None, help="base model for --align (default: the shipped demo model)")
    p.add_argument("--align-langs", default=",".join(ALIGN_LANGS))
    p.add_argument("--tokens", type=int, default=None, help="training budget in tokens")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing output directory")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _qa_texts(langs, split: str, seed: int) -> list[tuple[str, int]]:
    """QA and math examples as (full text, length of the prompt part that carries no loss)."""
    from langneuron_eval import demo_corpus
    from langneuron_eval.lmeval.prompts import math_prompt, qa_prompt

    out = []
    for lang in langs:
        for item in demo_corpus.qa_items(lang, split, seed=seed):
            prompt = qa_prompt(item["context"], item["question"])
            out.append((f"{prompt} {item['answers']['text'][0]}\n", len(prompt)))
        for item in demo_corpus.math_items(lang, split, seed=seed):
            prompt = math_prompt(item["question"])
            out.append((f"{prompt} {item['equation']} = {item['answer_number']}\n", len(prompt)))
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from langneuron_eval import demo_corpus
    from langneuron_eval.pipelines.train_demo import (
        DemoModelConfig,
        TrainConfig,
        new_model,
        perplexity,
        train,
        train_tokenizer,
    )

    out = check_output_dir(args.out, args.force, hint="pass --force to replace it")
    if args.tokens is not None and args.tokens < 1:
        raise LangNeuronError(f"--tokens must be at least 1, got {args.tokens}")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    langs = list(demo_corpus.LANGUAGES)
    from langneuron_eval.provenance import versions

    report: dict = {"languages": langs, "seed": args.seed, "versions": versions()}
    if not args.align:
        texts = [t for lang in langs for t in demo_corpus.sentences(lang, "train", seed=args.seed)]
        qa = _qa_texts(["en"], "train", args.seed)  # the base model can answer questions in English only
        all_texts = texts + [t for t, _ in qa]
        random.Random(args.seed).shuffle(all_texts)
        tok = train_tokenizer(all_texts, DemoModelConfig().vocab_size)
        model = new_model(tok, DemoModelConfig(), args.seed)
        cfg = TrainConfig(tokens=args.tokens or 2_000_000, seed=args.seed)
        report["train"] = train(model, tok, all_texts, cfg, progress=not args.no_progress)
        report["model"] = vars(DemoModelConfig())
    else:
        from langneuron_eval.core.modeling import default_model_path, load_model

        align = [x for x in args.align_langs.split(",") if x]
        model, tok = load_model(args.base or default_model_path())
        qa = _qa_texts(align, "train", args.seed)
        replay = [(t, 0) for lang in langs for t in demo_corpus.sentences(lang, "train", n=len(qa) // 6 + 1,
                                                                            seed=args.seed + 1)]
        items = qa + replay
        random.Random(args.seed).shuffle(items)
        prefix = {t: n for t, n in items}
        cfg = TrainConfig(tokens=args.tokens or 400_000, lr=1e-3, warmup=20, seed=args.seed)
        report["align"] = {"languages": align, **train(model, tok, [t for t, _ in items], cfg,
                                                       progress=not args.no_progress, loss_mask=prefix.get)}
    report["perplexity"] = {
        lang: {split: round(perplexity(model, tok, demo_corpus.sentences(lang, split, n=300, seed=7)), 3)
               for split in ("train", "eval")}
        for lang in langs
    }
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        staged = Path(tmp) / "model"
        model.save_pretrained(str(staged))
        tok.save_pretrained(str(staged))
        write_json(staged / "training_report.json", report)
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(staged), str(out))
    ppl = report["perplexity"]
    print("perplexity train / held-out: " + ", ".join(
        f"{lang} {ppl[lang]['train']:.1f}/{ppl[lang]['eval']:.1f}" for lang in langs), file=sys.stderr)
    print(f"wrote {out}", file=sys.stderr)
    return 0
