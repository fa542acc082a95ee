"""Calibration of the text-quality metrics (docs/steering_quality.md prints this script's output).

* The degenerate rule: held-out demo-corpus text cut into pieces of generation length (32, 64, 128 tokens of
  the demo tokenizer) must not be flagged; the same pieces ending in a loop of 1 to 8 words must be, once the
  loop fills half of the piece.
* The word- and line-level pass rates: 64-token held-out pieces judged against their own language and the others.

Run::

    python benchmarks/text_quality_calibration.py

Needs only the demo tokenizer and the shipped LID model; a few seconds.
"""

from __future__ import annotations

import statistics

from tokenizers import Tokenizer

from langneuron_eval import demo_corpus
from langneuron_eval.core import demo_assets
from langneuron_eval.lmeval import text_quality as q

LANGS = ("en", "de", "fr", "es", "zh", "ja")


def chunks(tok: Tokenizer, lang: str, n_tokens: int) -> list[str]:
    """Held-out sentences joined and cut into pieces of ``n_tokens`` demo-model tokens."""
    ids = tok.encode(" ".join(demo_corpus.sentences(lang, "eval"))).ids
    return [tok.decode(ids[i:i + n_tokens]) for i in range(0, len(ids) - n_tokens, n_tokens)]


def flags(text: str) -> tuple[float, float, float, bool]:
    d2, rep, comp = q.distinct_n(text, 2), q.repetition_rate(text, 4), q.compression_ratio(text)
    return d2, rep, comp, q.is_degenerate(d2, rep, comp)


def natural_text(tok: Tokenizer) -> None:
    print("natural text: worst value over pieces, share flagged")
    for n in (32, 64, 128):
        for lang in LANGS:
            rows = [flags(t) for t in chunks(tok, lang, n)]
            print(f"  {n:3d} tokens {lang}: pieces {len(rows):4d}  min distinct-2 {min(r[0] for r in rows):.2f}  "
                  f"max repetition-4 {max(r[1] for r in rows):.2f}  max compression {max(r[2] for r in rows):.2f}  "
                  f"flagged {sum(r[3] for r in rows) / len(rows):.3f}")


def loops(tok: Tokenizer) -> None:
    print("loops: the first share of a 64-token piece kept, the rest a loop of its first p words "
          "(characters for zh, ja)")
    print("  cells: distinct-2 / repetition-4 / compression ratio, * = degenerate")
    for lang in ("en", "de", "zh", "ja"):
        text = chunks(tok, lang, 64)[0]
        sep = "" if lang in ("zh", "ja") else " "
        words = [u.text for u in q.units(text)]
        for keep in (0.0, 0.25, 0.5, 0.625, 0.75):
            prefix = text[:int(keep * len(text))]
            cells = []
            for period in (1, 2, 4, 8):
                loop = sep.join(words[:period]) + sep
                body = (loop * len(text))[:len(text) - len(prefix)]
                d2, rep, comp, bad = flags(prefix + sep + body)
                cells.append(f"p{period}: {d2:.2f}/{rep:.2f}/{comp:.1f}{'*' if bad else ' '}")
            print(f"  {lang} natural {keep:5.1%}: " + "  ".join(cells))


def pass_rates(tok: Tokenizer) -> None:
    for name, fn in (("word_pass_rate", q.word_pass_rate), ("line_pass_rate", q.line_pass_rate)):
        print(f"{name} of 64-token held-out pieces: mean (min) per text language (rows) x target (columns)")
        print("        " + "".join(f"{t:>13}" for t in LANGS))
        for src in LANGS:
            pieces = chunks(tok, src, 64)
            cells = []
            for tgt in LANGS:
                vals = [fn(p, tgt) for p in pieces]
                cells.append(f"{statistics.mean(vals):6.2f} ({min(vals):.2f})")
            print(f"  {src} ({len(pieces)})" + "".join(f"{c:>13}" for c in cells))


def main() -> None:
    tok = Tokenizer.from_file(str(demo_assets.base_model_path() / "tokenizer.json"))
    natural_text(tok)
    loops(tok)
    pass_rates(tok)


if __name__ == "__main__":
    main()
