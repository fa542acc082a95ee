"""Frames about animals and plants: pets, feeding, sightings, the zoo and the garden."""

from __future__ import annotations

from langneuron_eval.demo_corpus.engine import Frame
from langneuron_eval.demo_corpus.frame_spec import FrameSpec, ids, nums, pool, q, spec, union

P = pool("person")
R = pool("relative")
T_PET = union(ids("t_mornings", "t_afternoons", "t_evenings", "t_lunchtime"), pool("time", "season"))
T_FEED = union(ids("t_mornings", "t_afternoons", "t_evenings", "t_weekend", "t_after_school"),
               pool("time", "weekday"))


def _coat_fits(f: Frame) -> bool:
    """Colour adjectives only for coats they can describe (no green dogs, no black parrots)."""
    return bool(f["a"].tags & f["adj"].tags & {"fur", "feather", "shell"})


def _lives_there(f: Frame) -> bool:
    return f["pl"].id.removeprefix("pl_") in f["a"].tags


_FRAMES: list[FrameSpec] = [
    spec("pet", {"p": P, "a": pool("animal", "pet"), "adj": pool("adj", "colour"), "room": pool("place", "sleep"),
                 "t": T_PET},
         en="{p} has {a.aA} that sleeps {room.loc} {t}.",
         de="{p} hat {a.iA_acc}, {a?der|die|das} {t} {room.loc} schläft.",
         fr="{p} a {a.unA} qui dort {room.loc} {t}.",
         es="{p} tiene {a.unA} que duerme {room.loc} {t}.",
         zh="{p}有{a.oneA}，它{t}都在{room.loc}睡觉。",
         ja="{p}は{a.A}を飼っていて、その{a}は{t}{room}で寝ます。",
         valid=_coat_fits,
         questions=(
             q("who", "p", en="Who has {a.aA}?", de="Wer hat {a.iA_acc}?", fr="Qui a {a.unA} à la maison ?",
               es="¿Quién tiene {a.unA}?", zh="有{a.oneA}的是谁？", ja="{a.A}を飼っているのは誰ですか。"),
             q("what", "a", en="What animal does {p} have?", de="Was für ein Tier hat {p}?",
               fr="Quel animal {p} a-t-{p?il|elle} à la maison ?", es="¿Qué animal tiene {p}?", zh="{p}养的是什么动物？",
               ja="{p}はどんな動物を飼っていますか。"),
             q("where", "room", en="Where does {p}'s {a} sleep {t}?", de="Wo schläft {a.d_nom} von {p} {t}?",
               fr="Où dort {a.le} de {p} {t} ?", es="¿Dónde duerme {a.el} de {p} {t}?",
               zh="{p}的{a}{t}是在哪里睡觉的？", ja="{p}の{a}は{t}どこで寝ますか。"),
         )),
    spec("feed", {"p": P, "a": pool("animal", "feed"), "pl": pool("place", "feed"), "t": T_FEED},
         en="{p} feeds the {a.pl} {pl.loc} {t}.",
         de="{p} füttert {t} die {a.pl} {pl.loc}.",
         fr="{p} donne à manger aux {a.pl} {pl.loc} {t}.",
         es="{p} da de comer a {a.los} {pl.loc} {t}.",
         zh="{p}{t}都是在{pl.loc}喂{a}的。",
         ja="{p}は{t}{pl}で{a}にえさをやります。",
         valid=_lives_there,
         questions=(
             q("who", "p", en="Who feeds the {a.pl} {pl.loc} {t}?", de="Wer füttert {t} die {a.pl} {pl.loc}?",
               fr="Qui donne à manger aux {a.pl} {pl.loc} {t} ?", es="¿Quién da de comer a {a.los} {pl.loc} {t}?",
               zh="{t}在{pl.loc}喂{a}的是谁？", ja="{t}{pl}で{a}にえさをやるのは誰ですか。"),
             q("what", "a", en="Which animals does {p} feed {pl.loc} {t}?",
               de="Welche Tiere füttert {p} {t} {pl.loc}?",
               fr="À quels animaux est-ce que {p} donne à manger {pl.loc} {t} ?",
               es="¿A qué animales da de comer {p} {pl.loc} {t}?", zh="{p}{t}在{pl.loc}喂的是什么动物？",
               ja="{p}は{t}{pl}で何にえさをやりますか。"),
             q("where", "pl", en="Where does {p} feed the {a.pl} {t}?", de="Wo füttert {p} {t} die {a.pl}?",
               fr="Où est-ce que {p} donne à manger aux {a.pl} {t} ?", es="¿Dónde da de comer {p} a {a.los} {t}?",
               zh="{p}{t}是在哪里喂{a}的？", ja="{p}は{t}どこで{a}にえさをやりますか。"),
         )),
    spec("sighting", {"t": pool("time", "past"), "p": P, "n": nums(2, 6), "a": pool("animal"),
                      "pl": pool("place", "see")},
         en="{t}, {p} saw {n} {a.pl} {pl.loc}.",
         de="{t} hat {p} {pl.loc} {n} {a.pl} gesehen.",
         fr="{t}, {p} a vu {n} {a.pl} {pl.loc}.",
         es="{t}, {p} vio {n} {a.pl} {pl.loc}.",
         zh="{t}，{p}是在{pl.loc}看到{n}{a.mw}{a}的。",
         ja="{t}、{p}は{pl}で{a}を{n}{a.mw}見ました。",
         valid=_lives_there, cap=2000,
         questions=(
             q("who", "p", en="Who saw {n} {a.pl} {pl.loc} {t}?", de="Wer hat {t} {pl.loc} {n} {a.pl} gesehen?",
               fr="Qui a vu {n} {a.pl} {pl.loc} {t} ?", es="¿Quién vio {n} {a.pl} {pl.loc} {t}?",
               zh="{t}在{pl.loc}看到{n}{a.mw}{a}的是谁？", ja="{t}{pl}で{a}を{n}{a.mw}見たのは誰ですか。"),
             q("what", "a", en="Which animals did {p} see {pl.loc} {t}?", de="Welche Tiere hat {p} {t} {pl.loc} gesehen?",
               fr="Quels animaux est-ce que {p} a vus {pl.loc} {t} ?", es="¿Qué animales vio {p} {pl.loc} {t}?",
               zh="{t}{p}在{pl.loc}看到的是什么动物？", ja="{t}、{p}は{pl}でどんな動物を見ましたか。"),
             q("where", "pl", en="Where did {p} see {n} {a.pl} {t}?", de="Wo hat {p} {t} {n} {a.pl} gesehen?",
               fr="Où est-ce que {p} a vu {n} {a.pl} {t} ?", es="¿Dónde vio {p} {n} {a.pl} {t}?",
               zh="{t}，{p}是在什么地方看到{n}{a.mw}{a}的？", ja="{t}、{p}はどこで{a}を見ましたか。"),
             q("when", "t", en="When did {p} see {n} {a.pl} {pl.loc}?", de="Wann hat {p} {pl.loc} {n} {a.pl} gesehen?",
               fr="Quand est-ce que {p} a vu {n} {a.pl} {pl.loc} ?", es="¿Cuándo vio {p} {n} {a.pl} {pl.loc}?",
               zh="{p}是什么时候在{pl.loc}看到{n}{a.mw}{a}的？", ja="{p}はいつ{pl}で{a}を見ましたか。"),
         )),
    spec("zoo", {"p": P, "a": pool("animal", "zoo"), "adj": pool("adj", "zoo")},
         en="At the zoo, {p} likes the {a.pl} best because they are so {adj}.",
         de="Im Zoo mag {p} die {a.pl} am liebsten, weil sie so {adj} sind.",
         fr="Au zoo, {p} préfère les {a.pl} parce qu'{a?ils|elles} sont très {adj.pl@a}.",
         es="En el zoo, {p} prefiere {a.los} porque son muy {adj.pl@a}.",
         zh="在动物园里，{p}最喜欢{a}，因为它们非常{adj}。",
         ja="動物園で、{p}は{a}が一番好きです。とても{adj}からです。"),
    spec("plant", {"t": pool("time", "grow"), "p": P, "x": union(pool("food", "plant"), pool("thing", "plant")),
                   "pl": pool("place", "plant"), "r": R},
         en="{t}, {p} plants {x.pl} {pl.loc} with {r}.",
         de="{t} pflanzt {p} mit {r.dat} {x.pl} {pl.loc}.",
         fr="{t}, {p} plante des {x.pl} {pl.loc} avec {r}.",
         es="{t}, {p} planta {x.pl} {pl.loc} con {r}.",
         zh="{t}，{p}都会和{r}一起在{pl.loc}种{x}。",
         ja="{t}、{p}は{r}と一緒に{pl}に{x}を植えます。"),
]


def frames() -> list[FrameSpec]:
    return list(_FRAMES)
