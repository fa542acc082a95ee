"""Import NJUNLP's shipped Mistral activation files and compare our zhang masks with the masks they ship.

Zhang et al.'s repository (github.com/NJUNLP/Language-Neurons-Alignment) ships per-language activation
counts of a Mistral-7B model on MGSM (``activations/mgsm/``) and the masks its identify.py made from them
with top_rate 0.01 and lambda 0.109375 (``activation_masks/mgsm/0.01-0.109375/``). This script runs
``langneuron import-stats`` and ``langneuron detect --method zhang`` with those parameters and prints, per
language, the size of both masks and whether they hold the same neurons. Needs a clone of that repository:

    git clone https://github.com/NJUNLP/Language-Neurons-Alignment
    python benchmarks/import_reference.py Language-Neurons-Alignment
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from langneuron_eval.cli.main import main as langneuron

LANGS = ["en", "ru", "es", "fr", "de", "zh", "ja", "bn", "th", "sw"]  # the order of the shipped masks


def shipped_masks(repo: Path) -> dict[str, set[tuple[int, int]]]:
    (path,) = (repo / "activation_masks" / "mgsm" / "0.01-0.109375").glob("mask.*")
    masks = torch.load(path, map_location="cpu", weights_only=True)  # [lang][layer] -> LongTensor of units
    return {lang: {(layer, int(u)) for layer, units in enumerate(masks[k]) for u in units.tolist()}
            for k, lang in enumerate(LANGS)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a clone of NJUNLP/Language-Neurons-Alignment")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stats, neurons = Path(tmp) / "stats.safetensors", Path(tmp) / "zhang.json"
        rc = langneuron(["import-stats", str(args.repo / "activations" / "mgsm"), "--model-type", "mistral",
                         "--out", str(stats)])
        rc = rc or langneuron(["detect", "--stats", str(stats), "--method", "zhang", "--param", "top_rate=0.01",
                               "--param", "lambda_=0.109375", "--out", str(neurons)])
        if rc:
            return rc
        ours = json.loads(neurons.read_text(encoding="utf-8"))["languages"]
    theirs = shipped_masks(args.repo)
    same = 0
    print("language  shipped  ours  identical")
    for lang in LANGS:
        mine = {tuple(u) for u in ours.get(lang, [])}
        same += mine == theirs[lang]
        print(f"{lang:8}  {len(theirs[lang]):7}  {len(mine):4}  {mine == theirs[lang]}")
    print(f"{same} of {len(LANGS)} masks identical")
    return 0 if same == len(LANGS) else 1


if __name__ == "__main__":
    raise SystemExit(main())
