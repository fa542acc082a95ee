"""Detectors against independent loop-based implementations of docs/methods.md, plus property tests.

The brute-force versions below are deliberately naive: Python loops over neurons, ``math.log`` and
``math.fsum`` in float64, sorting lists of ``(score, flat index)``. They share no code with the
detectors. Scores are compared at float32 resolution (the detectors' documented ranking precision),
so mathematically equal scores tie in both and are broken by the lower index.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score

from langneuron_eval.core.fingerprint import ModelFingerprint
from langneuron_eval.core.stats import ActivationStats
from langneuron_eval.detectors import run_detector
from langneuron_eval.detectors.base import DetectionResult, as_detector
from langneuron_eval.detectors.kojima import KojimaAPDetector, average_precision
from langneuron_eval.detectors.lape import LapeDetector
from langneuron_eval.detectors.registry import get_detector
from langneuron_eval.detectors.zhang import ZhangDetector
from langneuron_eval.errors import LangNeuronError

LANGS = ["en", "de", "fr", "zh", "ja", "ko", "ru", "es", "it", "pt", "ar", "hi"]


def make_stats(K=3, L=2, N=8, seed=0, max_count=4, n_tok=4, equal_tokens=True, zero_tokens=(), zero_counts=(),
               S=0, levels=3, shared=False):
    """Random statistics with many exact ties: small integer counts, small token counts, few score levels.

    ``shared=True`` draws each unit's counts around a per-unit base rate, so some units fire often in
    every language (general neurons: what makes Zhang's lambda search bisect).
    """
    g = torch.Generator().manual_seed(seed)
    if equal_tokens:
        n = torch.full((K,), n_tok, dtype=torch.int64)
    else:
        n = torch.randint(1, n_tok + 1, (K,), generator=g)
    for k in zero_tokens:
        n[k] = 0
    # skewed: mostly low counts, a few high ones, so the 95% quantile is not the maximum (non-empty sets)
    pos = torch.stack([torch.where(torch.rand(L, N, generator=g) < 0.85,
                                   torch.randint(0, min(int(n[k]), max_count) // 2 + 1, (L, N), generator=g),
                                   torch.randint(0, min(int(n[k]), max_count) + 1, (L, N), generator=g))
                       for k in range(K)])
    if shared:
        base = torch.rand(L, N, generator=g) ** 2  # [L, N]
        jitter = 0.85 + 0.15 * torch.rand(K, L, N, generator=g)  # [K, L, N]
        pos = torch.minimum((base * jitter * n[:, None, None]).round().long(), n[:, None, None])
    for k in zero_counts:
        pos[k] = 0
    sums = torch.randn(K, L, N, generator=g, dtype=torch.float64)
    sm = sl = None
    if S:
        sl = torch.randint(0, K, (S,), generator=g)
        sl[:K] = torch.arange(K)  # every language has a sentence
        sm = torch.randint(0, levels, (S, L, N), generator=g).float() / 2
    return ActivationStats(LANGS[:K], n, pos, sums, sums.abs(), ModelFingerprint("llama", L, N, "act_out"), sm, sl)


def sets(result) -> dict[str, set]:
    langs = result.languages
    return {k: set(map(tuple, v)) for k, v in langs.items()}


# ------------------------------------------------------------------------------------------- brute force
def probs32(stats):
    """p[k][l][j] as float32 numbers, computed one by one."""
    K, L, N = stats.positive_counts.shape
    out = np.zeros((K, L, N), dtype=np.float32)
    for k in range(K):
        n = int(stats.n_tokens[k])
        for i in range(L):
            for j in range(N):
                out[k, i, j] = np.float32(int(stats.positive_counts[k, i, j]) / n) if n else np.float32(0)
    return out


def kth(values, ratio):
    flat = sorted(float(v) for v in np.asarray(values).ravel())
    k = min(max(round(len(flat) * ratio), 1), len(flat))
    return flat[k - 1]


def brute_lape(stats, top_rate=0.01, filter_rate=0.95, bar=0.95, quota=False):
    p = probs32(stats)
    K, L, N = p.shape
    tf, tb = kth(p, filter_rate), kth(p, bar)
    scored = []
    for i in range(L):
        for j in range(N):
            v = [float(p[k, i, j]) for k in range(K)]
            if not any(x > tf for x in v):
                continue
            s = math.fsum(v)
            q = [x / s for x in v] if s > 0 else [0.0] * K
            h = -math.fsum(x * math.log(x) for x in q if x > 0)
            scored.append((float(np.float32(h)), i * N + j, v))
    scored.sort(key=lambda t: (t[0], t[1]))
    n = round(L * N * top_rate)
    out = {lang: set() for lang in stats.languages}
    if not quota:
        for _, flat, v in scored[:n]:
            for k, lang in enumerate(stats.languages):
                if v[k] > tb:
                    out[lang].add(divmod(flat, N))
    else:
        for k, lang in enumerate(stats.languages):
            cands = [t for t in scored if t[2][k] == max(t[2]) and t[2][k] > tb]
            out[lang] = {divmod(flat, N) for _, flat, _ in cands[:n]}
    return out


def c_K(K):
    return sum(1.0 / k for k in range(1, K + 1)) / K


def zhang_score(v, lam, formulation="code"):
    K = len(v)
    s = math.fsum(v)
    q = [x / s for x in v] if s > 0 else [1.0 / K] * K
    q = [max(x, 1e-12) for x in q]
    z = math.fsum(q)
    q = [x / z for x in q]
    h = -math.fsum(x * math.log(x) for x in q)
    if formulation == "code":
        return float(np.float32(h / math.log(K) - lam * max(v) / c_K(K)))
    return float(np.float32(h - lam * max(v)))


def brute_zhang(stats, top_rate, lam, bar=0.95, formulation="code"):
    """Zhang's sets at a given lambda (the automatic choice of lambda is tested by its properties below)."""
    p = probs32(stats)
    K, L, N = p.shape
    tau = kth(p, bar)
    vecs = [[float(p[k, i, j]) for k in range(K)] for i in range(L) for j in range(N)]
    n_of = [sum(x > tau for x in v) for v in vecs]
    n_sel = round(L * N * top_rate)

    def select(lam_):
        order = sorted(range(len(vecs)), key=lambda f: (zhang_score(vecs[f], lam_, formulation), f))
        return order[:n_sel]

    chosen = select(lam)
    out = {lang: set() for lang in stats.languages}
    specific = dict.fromkeys(stats.languages, 0)
    related = dict.fromkeys(stats.languages, 0)
    for f in chosen:
        for k, lang in enumerate(stats.languages):
            if vecs[f][k] > tau:
                out[lang].add(divmod(f, N))
                specific[lang] += n_of[f] == 1
                related[lang] += 1 < n_of[f] < K
    general = {divmod(f, N) for f in range(len(vecs)) if n_of[f] == K}
    appear = [0] * (K + 1)
    for f in chosen:
        appear[n_of[f]] += 1
    return out, {"lambda": lam, "tau": tau, "specific": specific, "related": related, "general": general,
                 "appear": appear}


def brute_kojima(stats, k_top, k_bottom):
    S = stats.sentence_means.shape[0]
    X = stats.sentence_means.reshape(S, -1).numpy()
    U, N = X.shape[1], stats.intermediate_size
    out = {}
    for k, lang in enumerate(stats.languages):
        y = (stats.sentence_lang.numpy() == k)
        if not y.any():
            out[lang] = set()
            continue
        key = [float(np.float32(average_precision_score(y, X[:, u]))) for u in range(U)]
        top = sorted(range(U), key=lambda u: (-key[u], u))[:k_top]
        rest = [u for u in range(U) if u not in set(top)]
        bottom = sorted(rest, key=lambda u: (key[u], u))[:k_bottom]
        out[lang] = {divmod(u, N) for u in top + bottom}
    return out


SHAPES = [  # (K, L, N, kwargs)
    (2, 1, 20, {}),
    (3, 2, 8, {"zero_tokens": (1,)}),
    (4, 3, 10, {"zero_counts": (2,), "equal_tokens": False, "n_tok": 6}),
    (5, 2, 16, {"max_count": 2}),
    (7, 4, 12, {"n_tok": 9, "max_count": 9, "equal_tokens": False}),
]


# ------------------------------------------------------------------------------------------- LAPE
@pytest.mark.parametrize("K,L,N,kw", SHAPES)
@pytest.mark.parametrize("top_rate,filter_rate,bar", [(0.05, 0.95, 0.95), (0.2, 0.7, 0.9), (0.5, 0.3, 0.6)])
def test_lape_matches_brute_force(K, L, N, kw, top_rate, filter_rate, bar):
    found = 0
    for seed in range(4):
        stats = make_stats(K, L, N, seed=seed, **kw)
        got = LapeDetector()(stats, top_rate=top_rate, filter_rate=filter_rate, activation_bar_ratio=bar)
        assert sets(got) == brute_lape(stats, top_rate, filter_rate, bar)
        found += sum(map(len, got.languages.values()))
    assert found > 0  # the comparison was not between empty sets only


def test_lape_defaults_match_brute_force():
    stats = make_stats(7, 4, 64, seed=11, n_tok=30, max_count=30, equal_tokens=False, zero_tokens=(6,))
    got = LapeDetector()(stats)
    assert sets(got) == brute_lape(stats)
    assert got.extra["n_target"] == 3 and sum(map(len, got.languages.values())) >= 3


@pytest.mark.parametrize("K,L,N,kw", SHAPES)
def test_lape_quota_matches_brute_force(K, L, N, kw):
    found = 0
    for seed in range(3):
        stats = make_stats(K, L, N, seed=seed, **kw)
        got = LapeDetector()(stats, top_rate=0.1, filter_rate=0.6, activation_bar_ratio=0.7, per_language_quota=True)
        assert sets(got) == brute_lape(stats, 0.1, 0.6, 0.7, quota=True)
        found += sum(map(len, got.languages.values()))
    assert found > 0


def test_lape_never_selects_filtered_neurons_to_fill_the_quota():
    # 40 probabilities: 0, 0, 0.05 x 36, 0.8, 0.9 -> tau_f = 38th smallest = 0.05, so only units 0 and 1
    # pass the filter; top_rate asks for 10 and the +inf units must not fill the gap
    n = torch.tensor([100, 100])
    pos = torch.zeros(2, 1, 20, dtype=torch.int64)
    pos[0, 0, 0], pos[1, 0, 1] = 90, 80
    pos[:, 0, 2:] = 5
    z = torch.zeros(2, 1, 20, dtype=torch.float64)
    stats = ActivationStats(["en", "de"], n, pos, z, z, ModelFingerprint("llama", 1, 20, "act_out"))
    got = LapeDetector()(stats, top_rate=0.5)
    assert got.extra["tau_filter"] == pytest.approx(0.05)
    assert sets(got) == {"en": {(0, 0)}, "de": {(0, 1)}}
    assert got.extra["n_selected"] == 2 and got.extra["n_target"] == 10


def test_lape_ties_prefer_lower_flat_index():
    # eight identical neurons across two layers, keep round(8 * 0.25) = 2 -> the first two of layer 0
    n = torch.tensor([10, 10])
    pos = torch.zeros(2, 2, 4, dtype=torch.int64)
    pos[0] = 9
    pos[1] = 1
    z = torch.zeros(2, 2, 4, dtype=torch.float64)
    stats = ActivationStats(["en", "de"], n, pos, z, z, ModelFingerprint("llama", 2, 4, "act_out"))
    got = LapeDetector()(stats, top_rate=0.25, filter_rate=0.4, activation_bar_ratio=0.4)
    assert sets(got)["en"] == {(0, 0), (0, 1)}


# ------------------------------------------------------------------------------------------- Zhang
ZHANG_SHAPES = SHAPES + [(6, 3, 30, {"n_tok": 20, "max_count": 20, "equal_tokens": False}),
                         (10, 2, 40, {"n_tok": 30, "max_count": 30, "equal_tokens": False})]


@pytest.mark.filterwarnings("ignore:zhang. no lambda")  # some cases have no qualifying lambda, by design
@pytest.mark.parametrize("K,L,N,kw", ZHANG_SHAPES)
@pytest.mark.parametrize("formulation", ["code", "paper"])
def test_zhang_sets_at_the_chosen_lambda_match_brute_force(K, L, N, kw, formulation):
    for seed in range(3):
        stats = make_stats(K, L, N, seed=seed, shared=True, **{"n_tok": 12, **kw})
        got = ZhangDetector()(stats, top_rate=0.2, formulation=formulation)
        want, info = brute_zhang(stats, 0.2, got.extra["lambda"], formulation=formulation)
        assert sets(got) == want
        assert got.extra["tau"] == info["tau"]
        assert got.extra["specific"] == info["specific"] and got.extra["related"] == info["related"]
        assert got.extra["appear"] == info["appear"]
        assert {tuple(u) for u in got.extra["general"]} == info["general"]


def _shared_by_all(stats, lam, formulation="code"):
    """How many selected units fire in all K languages at ``lam`` (brute force): Zhang's rule wants 0."""
    return brute_zhang(stats, 0.2, lam, formulation=formulation)[1]["appear"][len(stats.languages)]


GRID = [i * 0.2 / 200 for i in range(201)]  # lambda grid over [0, 0.2], step 1e-3 (the search's eps)


@pytest.mark.filterwarnings("ignore:zhang. no lambda")
@pytest.mark.parametrize("K,L,N,kw", ZHANG_SHAPES[-4:])
def test_zhang_auto_lambda_against_its_rule_and_a_fine_grid(K, L, N, kw):
    """The chosen lambda keeps the rule, one search step more breaks it, and it sits where a grid scan puts it.

    Rule: the largest lambda in [0, 0.2] whose selection holds no unit that fires in all K languages (found to
    eps = 1e-3). Where the count of such units never falls as lambda grows (monotone: what bisection assumes,
    checked on the grid), the answer must lie within eps + one grid step of the grid's largest rule-keeping
    lambda.
    """
    eps, monotone_cases = 1e-3, 0
    for seed in range(3):
        stats = make_stats(K, L, N, seed=seed, shared=True, **{"n_tok": 12, **kw})
        got = ZhangDetector()(stats, top_rate=0.2)
        lam, found = got.extra["lambda"], got.extra["lambda_search"]["found"]
        scan = [_shared_by_all(stats, g) for g in GRID]
        assert 0.0 <= lam <= 0.2
        if not found:  # no lambda kept the rule: neither end of the interval does
            assert lam == 0.0 and scan[0] > 0 and scan[-1] > 0
            continue
        assert _shared_by_all(stats, lam) == 0  # the rule holds at the chosen lambda
        if all(a <= b for a, b in zip(scan, scan[1:])):
            monotone_cases += 1
            best = max(g for g, n in zip(GRID, scan) if n == 0)
            assert abs(lam - best) <= eps + 0.2 / 200, (lam, best)
            if lam + eps <= 0.2:
                assert _shared_by_all(stats, lam + eps) > 0  # one search step larger breaks the rule
    assert monotone_cases >= 1  # the grid comparison ran


@settings(max_examples=25, deadline=None, database=None)
@given(st.integers(2, 6), st.integers(1, 2), st.integers(4, 12), st.integers(0, 10_000))
def test_zhang_chosen_lambda_keeps_the_rule(K, L, N, seed):
    """On any input: a found lambda keeps the rule, and a larger upper end never gives a smaller lambda when the
    rule already holds at the smaller end (the largest rule-keeping lambda can only grow with the interval)."""
    stats = make_stats(K, L, N, seed=seed, shared=True, n_tok=12, max_count=12, equal_tokens=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = ZhangDetector()(stats, top_rate=0.2)
        wider = ZhangDetector()(stats, top_rate=0.2, lambda_hi=0.4)
    if got.extra["lambda_search"]["found"]:
        assert _shared_by_all(stats, got.extra["lambda"]) == 0
        if got.extra["lambda"] == 0.2:
            assert wider.extra["lambda"] >= 0.2


def test_zhang_brute_force_cases_are_not_trivial():
    """The cases above select neurons, bisect to interior lambdas and include a search that fails."""
    found, lambdas, failed = 0, set(), 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for K, L, N, kw in ZHANG_SHAPES:
            for seed in range(3):
                got = ZhangDetector()(make_stats(K, L, N, seed=seed, shared=True, **{"n_tok": 12, **kw}), top_rate=0.2)
                found += sum(map(len, got.languages.values()))
                lambdas.add(got.extra["lambda"])
                failed += not got.extra["lambda_search"]["found"]
    assert found > 0 and len(lambdas - {0.0, 0.2}) >= 3 and failed >= 1


@pytest.mark.parametrize("lam", [0.0, 0.05, 0.3])
def test_zhang_fixed_lambda_matches_brute_force(lam):
    for seed in range(3):
        stats = make_stats(6, 3, 10, seed=seed, n_tok=7, max_count=7, equal_tokens=False)
        got = ZhangDetector()(stats, top_rate=0.15, **{"lambda": lam})
        want, info = brute_zhang(stats, 0.15, lam=lam)
        assert sets(got) == want and got.extra["appear"] == info["appear"]
        assert not got.extra["lambda_search"]["auto"]


def test_zhang_paper_and_code_rank_identically():
    stats = make_stats(10, 3, 40, seed=5, n_tok=50, max_count=50, equal_tokens=False)
    code = ZhangDetector()(stats, top_rate=0.1)
    paper = ZhangDetector()(stats, top_rate=0.1, formulation="paper")
    assert sets(code) == sets(paper)
    assert paper.extra["lambda_code"] == pytest.approx(code.extra["lambda"], rel=1e-9)
    assert paper.extra["lambda"] == pytest.approx(code.extra["lambda"] * math.log(10) / c_K(10), rel=1e-9)


def test_zhang_auto_lambda_leaves_no_selected_neuron_in_all_languages():
    stats = make_stats(4, 2, 30, seed=3, n_tok=20, max_count=20, equal_tokens=False)
    got = ZhangDetector()(stats, top_rate=0.3)
    assert got.extra["lambda_search"]["found"]
    assert got.extra["appear"][4] == 0 and got.extra["general_selected"] == []
    # and a slightly larger lambda (beyond the search resolution) would have broken the rule or hit the bound
    lam = got.extra["lambda"]
    if lam < 0.2:
        worse = ZhangDetector()(stats, top_rate=0.3, **{"lambda": lam + 2e-3})
        assert worse.extra["appear"][4] > 0


def test_zhang_entropy_clamps_zeros_like_the_reference():
    from langneuron_eval.detectors.scoring import clamped_entropy

    z = 1 + 2e-12  # p = (0.5, 0, 0): p' clamped to (1, 1e-12, 1e-12), renormalised
    want = -((1 / z) * math.log(1 / z) + 2 * (1e-12 / z) * math.log(1e-12 / z))
    got = clamped_entropy(torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert got[0].item() == pytest.approx(want, rel=1e-12)
    assert got[1].item() == pytest.approx(math.log(3), rel=1e-12)  # sum 0 -> uniform


def test_zhang_needs_two_languages():
    with pytest.raises(LangNeuronError, match="at least 2 languages"):
        ZhangDetector()(make_stats(1, 1, 5))


# ------------------------------------------------------------------------------------------- Kojima
def test_ap_equals_sklearn_including_ties():
    g = torch.Generator().manual_seed(0)
    S, U, K = 37, 60, 4
    x = torch.randint(0, 4, (S, U), generator=g).float()  # heavy ties
    x[:, :20] = torch.randn(S, 20, generator=g)  # no ties
    x[:, 20] = 1.0  # one constant unit: a single threshold
    lab = torch.randint(0, K, (S,), generator=g)
    lab[:K] = torch.arange(K)
    ap = average_precision(x, lab, K, chunk_units=7)  # several chunks, last one partial
    for k in range(K):
        for u in range(U):
            assert ap[k, u].item() == pytest.approx(average_precision_score((lab == k).numpy(), x[:, u].numpy()),
                                                    abs=1e-12)


def test_ap_language_without_sentences_is_nan():
    ap = average_precision(torch.randn(5, 3), torch.tensor([0, 0, 1, 1, 0]), 3)
    assert torch.isnan(ap[2]).all() and not torch.isnan(ap[:2]).any()


@pytest.mark.parametrize("K,L,N,S,levels", [(2, 1, 16, 10, 2), (3, 2, 10, 25, 3), (5, 3, 8, 40, 4), (4, 2, 20, 30, 50)])
def test_kojima_matches_brute_force(K, L, N, S, levels):
    for seed in range(2):
        stats = make_stats(K, L, N, seed=seed, S=S, levels=levels)
        got = KojimaAPDetector()(stats, k_top=3, k_bottom=4)
        assert sets(got) == brute_kojima(stats, 3, 4)
        for lang in stats.languages:
            d = got.extra["units"][lang]
            assert len(d["top"]) == 3 and len(d["bottom"]) == 4
            assert not {tuple(u) for u in d["top"]} & {tuple(u) for u in d["bottom"]}
            assert min(d["top_ap"]) >= max(d["bottom_ap"])


def test_kojima_scales_down_with_a_warning_and_skips_a_language_without_sentences():
    stats = make_stats(3, 2, 10, S=12, seed=1)
    stats.sentence_lang[stats.sentence_lang == 2] = 0  # no 'fr' sentences
    with pytest.warns(UserWarning) as record:
        got = KojimaAPDetector()(stats)
    messages = " | ".join(str(w.message) for w in record)
    assert "2000 units requested" in messages and "only 20 units" in messages and "top 5 + bottom 5" in messages
    assert "no sentences of 'fr'" in messages
    assert got.extra["k_top"] == 5 and got.extra["k_bottom"] == 5
    assert got.languages["fr"] == [] and len(got.languages["en"]) == 10


def test_kojima_top_and_bottom_are_disjoint_when_all_ap_tie():
    stats = make_stats(2, 1, 10, S=8, seed=0)
    stats.sentence_means.zero_()  # every unit has the same AP
    got = KojimaAPDetector()(stats, k_top=2, k_bottom=3)
    d = got.extra["units"]["en"]
    assert d["top"] == [[0, 0], [0, 1]] and d["bottom"] == [[0, 2], [0, 3], [0, 4]]


def test_kojima_needs_sentence_means():
    with pytest.raises(LangNeuronError, match="per-sentence mean activations"):
        KojimaAPDetector()(make_stats(3, 1, 5))


def test_kojima_neuron_file_has_medians_of_the_target_language():
    stats = make_stats(3, 2, 10, S=30, levels=20, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nf = run_detector("kojima_ap", stats, {"k_top": "2", "k_bottom": "2"})
    for k, lang in enumerate(stats.languages):
        rows = stats.sentence_means[stats.sentence_lang == k].double().numpy()
        for (layer, unit), med in zip(nf.languages[lang], nf.values[lang]["median"]):
            assert med == pytest.approx(float(np.median(rows[:, layer, unit])))


# ------------------------------------------------------------------------------------------- baselines
def test_random_matches_reference_counts_and_is_seeded():
    stats = make_stats(4, 3, 20, seed=4, n_tok=10, max_count=10, equal_tokens=False)
    ref = LapeDetector()(stats, top_rate=0.2)
    a = get_detector("random")(stats, reference_params="top_rate=0.2")
    b = get_detector("random")(stats, reference_params="top_rate=0.2")
    c = get_detector("random")(stats, reference_params="top_rate=0.2", seed=1)
    assert {k: len(v) for k, v in a.languages.items()} == {k: len(v) for k, v in ref.languages.items()}
    assert a.languages == b.languages and a.languages != c.languages
    reordered = get_detector("random")(stats.subset_languages(stats.languages[::-1]), reference_params="top_rate=0.2")
    assert sets(reordered) == sets(a)  # a language's draw does not depend on the language order


def test_lap_matches_brute_force():
    stats = make_stats(5, 2, 15, seed=6, zero_tokens=(4,), n_tok=5, max_count=5)
    got = get_detector("lap")(stats, top_rate=0.1)
    p = probs32(stats)
    n = round(2 * 15 * 0.1)
    for k, lang in enumerate(stats.languages):
        cand = [(-float(p[k].ravel()[f]), f) for f in range(30) if p[k].ravel()[f] > 0]
        want = {divmod(f, 15) for _, f in sorted(cand)[:n]}
        assert sets(got)[lang] == want
    assert got.languages["ja"] == [] and all(len(got.languages[x]) == n for x in ("en", "de", "fr", "zh"))


# ------------------------------------------------------------------------------------------- run_detector
def test_run_detector_fills_the_neuron_file():
    stats = make_stats(3, 2, 8, seed=0, n_tok=6, max_count=6, equal_tokens=False)
    nf = run_detector("lape", stats, {"top_rate": "0.25", "filter_rate": "0.5"})
    assert nf.detector == "lape" and nf.fingerprint == stats.fingerprint
    assert nf.params == {"top_rate": 0.25, "filter_rate": 0.5, "activation_bar_ratio": 0.95, "per_language_quota": False}
    assert nf.provenance["stats_sha256"] == stats.sha256() and nf.provenance["package_version"]
    mean = stats.activation_mean()
    for lang, units in nf.languages.items():
        k = stats.lang_index(lang)
        if units:
            assert nf.values[lang]["mean"] == [float(mean[k, a, b]) for a, b in units]
    assert sum(map(len, nf.languages.values())) > 0


def test_run_detector_errors():
    stats = make_stats(3, 2, 8)
    with pytest.raises(LangNeuronError, match=r"unknown parameter 'toprate'.*did you mean 'top_rate'.*filter_rate"):
        run_detector("lape", stats, {"toprate": "0.1"})
    with pytest.raises(LangNeuronError, match="top_rate.*expects float.*'abc'"):
        run_detector("lape", stats, {"top_rate": "abc"})
    with pytest.raises(LangNeuronError, match=r"top_rate must be in \(0, 1\]"):
        run_detector("lape", stats, {"top_rate": "2"})
    with pytest.raises(LangNeuronError, match="use true or false"):
        run_detector("lape", stats, {"per_language_quota": "maybe"})
    with pytest.raises(LangNeuronError, match="choose one of code, paper"):
        run_detector("zhang", stats, {"formulation": "papr"})
    with pytest.raises(LangNeuronError, match=r"unknown detector 'lapee' \(did you mean 'lape'"):
        run_detector("lapee", stats)
    stats.fingerprint = None
    with pytest.raises(LangNeuronError, match="no model fingerprint"):
        run_detector("lape", stats)


def test_function_detector_params_from_signature():
    def first_k(stats, k: int = 1, scale: float = 1.0):
        return DetectionResult({lang: [(0, j) for j in range(k)] for lang in stats.languages}, {"scale": scale})

    det = as_detector(first_k, "first_k")
    assert [s.name for s in det.param_specs()] == ["k", "scale"]
    res = det.detect(make_stats(2, 1, 5), det.make_params({"k": "3", "scale": "2"}))
    assert sets(res)["en"] == {(0, 0), (0, 1), (0, 2)} and res.extra == {"scale": 2.0}


# ------------------------------------------------------------------------------------------- properties
stats_args = st.tuples(st.integers(2, 6), st.integers(1, 3), st.integers(3, 12), st.integers(0, 10_000),
                       st.integers(1, 8), st.booleans())

FAST = settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _random_stats(args, S=0):
    K, L, N, seed, n_tok, equal = args
    return make_stats(K, L, N, seed=seed, n_tok=n_tok, max_count=n_tok, equal_tokens=equal, S=S)


@FAST
@given(stats_args, st.randoms(use_true_random=False))
def test_permuting_languages_permutes_the_result(args, rnd):
    stats = _random_stats(args, S=3 * args[0])
    perm = list(stats.languages)
    rnd.shuffle(perm)
    permuted = stats.subset_languages(perm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, params in [("lape", {"top_rate": 0.2}), ("lape", {"top_rate": 0.2, "per_language_quota": True}),
                             ("zhang", {"top_rate": 0.2}), ("lap", {"top_rate": 0.2}),
                             ("kojima_ap", {"k_top": 2, "k_bottom": 2}), ("random", {})]:
            det = get_detector(name)
            assert sets(det(stats, **params)) == sets(det(permuted, **params)), name


@FAST
@given(stats_args, st.integers(2, 10_000), st.sampled_from([0.01, 0.1, 0.3]), st.booleans())
def test_scaling_counts_and_tokens_leaves_lape_unchanged(args, factor, top_rate, quota):
    stats = _random_stats(args)
    scaled = ActivationStats(stats.languages, stats.n_tokens * factor, stats.positive_counts * factor,
                             stats.activation_sums, stats.activation_sq_sums, stats.fingerprint)
    a = LapeDetector()(stats, top_rate=top_rate, per_language_quota=quota)
    b = LapeDetector()(scaled, top_rate=top_rate, per_language_quota=quota)
    assert a.languages == b.languages and a.extra == b.extra


@settings(max_examples=40, deadline=None, database=None)
@given(st.integers(2, 12), st.integers(1, 3), st.integers(1, 20), st.integers(0, 10_000),
       st.sampled_from(["random", "zero", "equal", "one_hot"]), st.sampled_from([0.01, 0.2, 1.0]))
def test_zhang_lambda_search_never_crashes(K, L, N, seed, kind, top_rate):
    stats = make_stats(K, L, N, seed=seed, n_tok=5, max_count=5)
    if kind == "zero":
        stats.positive_counts.zero_()
    elif kind == "equal":
        stats.positive_counts.fill_(3)
    elif kind == "one_hot":
        stats.positive_counts.zero_()
        stats.positive_counts[seed % K] = 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = ZhangDetector()(stats, top_rate=top_rate)
    lam = got.extra["lambda"]
    assert 0.0 <= lam <= 0.2
    if got.extra["lambda_search"]["found"]:
        assert got.extra["appear"][K] == 0
    assert sum(got.extra["appear"]) == round(L * N * top_rate)
