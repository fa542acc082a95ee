"""Grade-school word problems (MGSM format): one or two additions/subtractions with small numbers.

Each problem is a frame like any other (so it is parallel across languages and split by the hash of
its id); the equation is rendered from the same slot values and evaluated to give the answer.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langneuron_eval.demo_corpus.build import FrameInst, draw
from langneuron_eval.demo_corpus.engine import Frame
from langneuron_eval.demo_corpus.entries import Entry
from langneuron_eval.demo_corpus.frame_spec import FrameSpec, ids, nums, pool
from langneuron_eval.demo_corpus.realise import realiser
from langneuron_eval.demo_corpus.splits import rng

MATH_CAP = {"train": None, "detect": 300, "eval": 300}


@dataclass(frozen=True)
class MathSpec(FrameSpec):
    equation: str = ""


def evaluate(equation: str) -> int:
    """Value of ``"7 + 5 - 3"`` (integers joined by + and -); anything else is rejected."""
    if not re.fullmatch(r"\s*\d+(\s*[-+]\s*\d+)*\s*", equation):
        raise ValueError(f"not a +/- equation: {equation!r}")
    tokens = re.findall(r"[-+]|\d+", equation)
    total = int(tokens[0])
    for op, num in zip(tokens[1::2], tokens[2::2]):
        total = total + int(num) if op == "+" else total - int(num)
    return total


P = pool("person")
R = pool("relative")
A, B, C = nums(5, 20), nums(2, 9), nums(2, 9)
OBJECTS = pool("noun", "math")
EDIBLE = ids("apple", "banana", "orange", "pear", "peach", "mandarin", "biscuit")
BOXABLE = ids("th_stamp", "th_sticker", "th_shell", "th_marble", "th_toy_car", "th_crayon", "th_pencil", "th_pen",
              "th_candle", "th_book")
SELLABLE = ids("apple", "orange", "pear", "lemon", "egg", "strawberry", "th_flower", "th_candle", "th_balloon",
               "th_book", "th_pencil")
HOW_MANY_ES = "¿{o?Cuántos|Cuántas}"


def _n(f: Frame, slot: str) -> int:
    return int(f[slot].f("en")["d"])


def _spec(id_: str, slots: dict[str, tuple[Entry, ...]], equation: str, valid: Callable[[Frame], bool] | None,
          **text: str) -> MathSpec:
    s = MathSpec(id_, slots, text, (), valid, 700, equation)
    s.check()
    return s


_SPECS: tuple[MathSpec, ...] = (
    _spec("math_buy", {"p": P, "o": OBJECTS, "a": A, "b": B}, "{a} + {b}", None,
          en="{p} has {a.d} {o.pl}. {p?He|She} buys {b.d} more. How many {o.pl} does {p} have now?",
          de="{p} hat {a.d} {o.pl}. {p?Er|Sie} kauft {b.d} weitere dazu. Wie viele {o.pl} hat {p} jetzt?",
          fr="{p} a {a.d} {o.pl}. {p?Il|Elle} en achète {b.d} de plus. "
             "Combien de {o.pl} {p} a-t-{p?il|elle} maintenant ?",
          es="{p} tiene {a.d} {o.pl}. Compra {b.d} más. " + HOW_MANY_ES + " {o.pl} tiene {p} ahora?",
          zh="{p}有{a.d}{o.mw}{o}，又买了{b.d}{o.mw}。{p}现在一共有多少{o.mw}{o}？",
          ja="{p}は{o}を{a.d}{o.mw}持っています。さらに{b.d}{o.mw}買いました。{p}は今、{o}を何{o.mw}持っていますか。"),
    _spec("math_give", {"p": P, "o": OBJECTS, "r": R, "a": A, "b": B}, "{a} - {b}",
          lambda f: _n(f, "a") > _n(f, "b"),
          en="{p} has {a.d} {o.pl} and gives {b.d} of them to {r}. How many {o.pl} does {p} have left?",
          de="{p} hat {a.d} {o.pl} und schenkt {r.dat} {b.d} davon. Wie viele {o.pl} hat {p} noch?",
          fr="{p} a {a.d} {o.pl} et en donne {b.d} à {r}. Combien de {o.pl} reste-t-il à {p} ?",
          es="{p} tiene {a.d} {o.pl} y le da {b.d} a {r}. " + HOW_MANY_ES + " {o.pl} le quedan a {p}?",
          zh="{p}有{a.d}{o.mw}{o}，把其中的{b.d}{o.mw}送给了{r}。{p}还剩下多少{o.mw}{o}？",
          ja="{p}は{o}を{a.d}{o.mw}持っていて、{r}に{b.d}{o.mw}あげました。{p}の{o}は何{o.mw}残っていますか。"),
    _spec("math_two_step", {"p": P, "o": OBJECTS, "r": R, "a": A, "b": B, "c": C}, "{a} + {b} - {c}",
          lambda f: _n(f, "a") + _n(f, "b") > _n(f, "c"),
          en="{p} has {a.d} {o.pl}, buys {b.d} more and then gives {c.d} to {r}. "
             "How many {o.pl} does {p} have now?",
          de="{p} hat {a.d} {o.pl}, kauft {b.d} dazu und schenkt dann {r.dat} {c.d} davon. "
             "Wie viele {o.pl} hat {p} jetzt?",
          fr="{p} a {a.d} {o.pl}, en achète {b.d} de plus, puis en donne {c.d} à {r}. "
             "Combien de {o.pl} {p} a-t-{p?il|elle} maintenant ?",
          es="{p} tiene {a.d} {o.pl}, compra {b.d} más y después le da {c.d} a {r}. "
             + HOW_MANY_ES + " {o.pl} tiene {p} ahora?",
          zh="{p}有{a.d}{o.mw}{o}，又买了{b.d}{o.mw}，然后把其中的{c.d}{o.mw}送给了{r}。那么，{p}现在有多少{o.mw}{o}？",
          ja="{p}は{o}を{a.d}{o.mw}持っています。{b.d}{o.mw}買って、そのあと{r}に{c.d}{o.mw}あげました。"
             "{p}は今、{o}を何{o.mw}持っていますか。"),
    _spec("math_together", {"p": P, "p2": P, "o": OBJECTS, "a": A, "b": B}, "{a} + {b}",
          lambda f: f["p"].id != f["p2"].id,
          en="{p} has {a.d} {o.pl} and {p2} has {b.d} {o.pl}. How many {o.pl} do they have together?",
          de="{p} hat {a.d} {o.pl} und {p2} hat {b.d} {o.pl}. Wie viele {o.pl} haben die beiden zusammen?",
          fr="{p} a {a.d} {o.pl} et {p2} a {b.d} {o.pl}. Combien de {o.pl} ont {p} et {p2} ensemble ?",
          es="{p} tiene {a.d} {o.pl} y {p2} tiene {b.d} {o.pl}. "
             + HOW_MANY_ES + " {o.pl} tienen {p} y {p2} en total?",
          zh="{p}有{a.d}{o.mw}{o}，{p2}有{b.d}{o.mw}{o}。他们一共有多少{o.mw}{o}？",
          ja="{p}は{o}を{a.d}{o.mw}、{p2}は{b.d}{o.mw}持っています。二人で合わせて何{o.mw}持っていますか。"),
    _spec("math_difference", {"p": P, "p2": P, "o": OBJECTS, "a": A, "b": B}, "{a} - {b}",
          lambda f: f["p"].id != f["p2"].id and _n(f, "a") > _n(f, "b"),
          en="{p} has {a.d} {o.pl} and {p2} has {b.d} {o.pl}. How many more {o.pl} does {p} have than {p2}?",
          de="{p} hat {a.d} {o.pl} und {p2} hat {b.d} {o.pl}. Wie viele {o.pl} hat {p} mehr als {p2}?",
          fr="{p} a {a.d} {o.pl} et {p2} a {b.d} {o.pl}. "
             "Combien de {o.pl} {p} a-t-{p?il|elle} de plus que {p2} ?",
          es="{p} tiene {a.d} {o.pl} y {p2} tiene {b.d} {o.pl}. "
             + HOW_MANY_ES + " {o.pl} más tiene {p} que {p2}?",
          zh="{p}有{a.d}{o.mw}{o}，而{p2}只有{b.d}{o.mw}{o}。那么，{p}比{p2}多出了多少{o.mw}{o}？",
          ja="{p}は{o}を{a.d}{o.mw}、{p2}は{b.d}{o.mw}持っています。{p}は{p2}より何{o.mw}多く持っていますか。"),
    _spec("math_eat", {"p": P, "o": EDIBLE, "a": A, "b": B}, "{a} - {b}",
          lambda f: _n(f, "a") > _n(f, "b"),
          en="There are {a.d} {o.pl} in the kitchen. {p} eats {b.d} of them. How many {o.pl} are left?",
          de="In der Küche liegen {a.d} {o.pl}. {p} isst {b.d} davon. Wie viele {o.pl} liegen noch in der Küche?",
          fr="Il y a {a.d} {o.pl} dans la cuisine. {p} en mange {b.d}. Combien de {o.pl} reste-t-il ?",
          es="Hay {a.d} {o.pl} en la cocina. {p} se come {b.d}. " + HOW_MANY_ES + " {o.pl} quedan?",
          zh="厨房里有{a.d}{o.mw}{o}，{p}吃掉了其中的{b.d}{o.mw}。那么，厨房里还剩下多少{o.mw}{o}？",
          ja="台所に{o}が{a.d}{o.mw}あります。{p}は{b.d}{o.mw}食べました。{o}は何{o.mw}残っていますか。"),
    _spec("math_boxes", {"p": P, "o": BOXABLE, "a": A, "b": B, "c": C}, "{a} + {b} + {c}", None,
          en="{p} has {a.d} {o.pl} in one box and {b.d} in another box. Then {p?he|she} finds {c.d} more. "
             "How many {o.pl} does {p} have in total?",
          de="{p} hat {a.d} {o.pl} in einer Schachtel und {b.d} in einer anderen. "
             "Dann findet {p?er|sie} noch {c.d}. Wie viele {o.pl} hat {p} insgesamt?",
          fr="{p} a {a.d} {o.pl} dans une boîte et {b.d} dans une autre. "
             "Ensuite, {p?il|elle} en trouve encore {c.d}. Combien de {o.pl} {p} a-t-{p?il|elle} en tout ?",
          es="{p} tiene {a.d} {o.pl} en una caja y {b.d} en otra. Después encuentra {c.d} más. "
             + HOW_MANY_ES + " {o.pl} tiene {p} en total?",
          zh="{p}的一个盒子里有{a.d}{o.mw}{o}，另一个盒子里有{b.d}{o.mw}。后来{p?他|她}又找到了{c.d}{o.mw}。"
             "{p}一共有多少{o.mw}{o}？",
          ja="{p}は箱に{o}を{a.d}{o.mw}、別の箱に{b.d}{o.mw}入れています。そのあと、さらに{c.d}{o.mw}見つけました。"
             "{p}は全部で{o}を何{o.mw}持っていますか。"),
    _spec("math_sell", {"p": P, "o": SELLABLE, "a": A, "b": B, "c": C}, "{a} - {b} - {c}",
          lambda f: _n(f, "a") > _n(f, "b") + _n(f, "c"),
          en="{p} had {a.d} {o.pl}. {p?He|She} sold {b.d} in the morning and {c.d} in the afternoon. "
             "How many {o.pl} does {p} have left?",
          de="{p} hatte {a.d} {o.pl}. Am Vormittag hat {p?er|sie} {b.d} verkauft und am Nachmittag {c.d}. "
             "Wie viele {o.pl} hat {p} noch?",
          fr="{p} avait {a.d} {o.pl}. {p?Il|Elle} en a vendu {b.d} le matin et {c.d} l'après-midi. "
             "Combien de {o.pl} lui reste-t-il ?",
          es="{p} tenía {a.d} {o.pl}. Vendió {b.d} por la mañana y {c.d} por la tarde. "
             + HOW_MANY_ES + " {o.pl} le quedan?",
          zh="{p}有{a.d}{o.mw}{o}，{p?他|她}上午卖掉了其中的{b.d}{o.mw}，下午又卖掉了{c.d}{o.mw}。那么，{p}还剩下多少{o.mw}{o}？",
          ja="{p}は{o}を{a.d}{o.mw}持っていました。午前中に{b.d}{o.mw}、午後に{c.d}{o.mw}売りました。"
             "{p}の{o}は何{o.mw}残っていますか。"),
)


def specs() -> tuple[MathSpec, ...]:
    return _SPECS


@functools.cache
def problems(split: str) -> tuple[FrameInst, ...]:
    """The split's problems in a fixed order (capped for detect/eval)."""
    chosen = [f for s in specs() for f in draw(s) if f.split == split]
    rng("math", split).shuffle(chosen)
    cap = MATH_CAP[split]
    return tuple(chosen[:cap] if cap is not None else chosen)


def realise(f: FrameInst, lang: str) -> dict[str, Any]:
    spec = f.spec
    assert isinstance(spec, MathSpec)
    question = realiser(lang).sentence(spec.text[lang], f.frame)
    equation = realiser("en").render(spec.equation.replace("}", ".d}"), f.frame)
    return {"question": question, "answer_number": evaluate(equation), "equation": equation}
