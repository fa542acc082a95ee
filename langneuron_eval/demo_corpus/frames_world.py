"""Frames about places and travel: trips, plans, weather, directions, trains, homes and the library."""

from __future__ import annotations

from langneuron_eval.demo_corpus.engine import Frame
from langneuron_eval.demo_corpus.frame_spec import FrameSpec, nums, pool, q, spec, union

P = pool("person")
R = pool("relative")
C = pool("city")


def _boat_to_port(f: Frame) -> bool:
    return "boat" not in f["tr"].tags or "port" in f["c"].tags


_FRAMES: list[FrameSpec] = [
    spec("trip", {"t": pool("time", "past"), "p": P, "c": C, "tr": pool("trip")},
         en="{t}, {p} travelled to {c} {tr}.",
         de="{t} ist {p} {tr} nach {c} {tr.part}.",
         fr="{t}, {p} est {p?allé|allée} à {c} {tr}.",
         es="{t}, {p} hizo un viaje a {c} {tr}.",
         zh="{t}，{p}是{tr}去{c}的。",
         ja="{t}、{p}は{tr}{c}に行きました。",
         valid=_boat_to_port,
         questions=(
             q("who", "p", en="Who travelled to {c} {tr} {t}?", de="Wer ist {t} {tr} nach {c} {tr.part}?",
               fr="Qui est allé à {c} {tr} {t} ?", es="¿Quién viajó a {c} {tr} {t}?",
               zh="{t}去{c}的时候{tr}的人是谁？", ja="{t}{tr}{c}に行ったのは誰ですか。"),
             q("where", "c", en="Where did {p} travel {tr} {t}?", de="Wohin ist {p} {t} {tr} {tr.part}?",
               fr="Où est-ce que {p} est {p?allé|allée} {tr} {t} ?", es="¿Adónde viajó {p} {tr} {t}?",
               zh="{t}，{p}{tr}去的那个城市叫什么名字？", ja="{t}、{p}は{tr}どこに行きましたか。"),
             q("when", "t", en="When did {p} travel to {c} {tr}?", de="Wann ist {p} {tr} nach {c} {tr.part}?",
               fr="Quand est-ce que {p} est {p?allé|allée} à {c} {tr} ?", es="¿Cuándo viajó {p} a {c} {tr}?",
               zh="{p}是什么时候{tr}去{c}的？", ja="{p}はいつ{tr}{c}に行きましたか。"),
         )),
    spec("plan", {"t": pool("time", "fut"), "p": P, "c": C, "r": R},
         en="{t}, {p} is going to travel to {c} with {r}.",
         de="{t} fährt {p} mit {r.dat} nach {c}.",
         fr="{t}, {p} va partir à {c} avec {r}.",
         es="{t}, {p} va a viajar a {c} con {r}.",
         zh="{t}，{p}要和{r}一起去{c}。",
         ja="{t}、{p}は{r}と一緒に{c}へ行く予定です。"),
    spec("sunny", {"w": pool("weather_good"), "c": C, "p": P, "r": R, "pl": pool("place", "outing")},
         en="Today {w}, so {p} is going {pl.dir} with {r}.",
         de="Heute {w}, deshalb geht {p} mit {r.dat} {pl.dir}.",
         fr="Aujourd'hui, {w}, alors {p} va {pl.dir} avec {r}.",
         es="Hoy {w}, así que {p} va {pl.dir} con {r}.",
         zh="今天{w}，所以{p}就和{r}一起去{pl}了。",
         ja="今日、{w}、{p}は{r}と一緒に{pl}へ行きます。", cap=2000),
    spec("rainy", {"w": pool("weather_bad"), "c": C, "p": P, "a": pool("act", "indoor")},
         en="Today {w}, so {p} stays at home and {a.s}.",
         de="Heute {w}, deshalb bleibt {p} zu Hause und {a.fin} {a.rest}.",
         fr="Aujourd'hui, {w}, alors {p} reste à la maison et {a.s}.",
         es="Hoy {w}, así que {p} se queda en casa y {a.s}.",
         zh="今天{w}，所以{p}就待在家里{a}了。",
         ja="今日、{w}、{p}は家で{a.masu}。", cap=2000),
    spec("forecast", {"fc": pool("forecast"), "c": C, "p": P},
         en="The weather forecast says it will {fc.w} in {c} tomorrow, so {p} is taking {fc.it}.",
         de="Laut Wetterbericht {fc.w} morgen in {c} {fc.pred}, deshalb nimmt {p} {fc.it} mit.",
         fr="La météo annonce {fc.w} à {c} pour demain, alors {p} va emporter {fc.it}.",
         es="El pronóstico dice que mañana {fc.w} en {c}, así que {p} va a llevar {fc.it}.",
         zh="天气预报说明天{c}{fc.w}，所以{p}会带{fc.it}。",
         ja="天気予報によると、明日{c}は{fc.w}そうなので、{p}は{fc.it}を持っていきます。"),
    spec("directions", {"c": C, "p": P, "pl": pool("place", "direction")},
         en="In {c}, {p} asks a passer-by where the nearest {pl} is.",
         de="In {c} fragt {p} einen Passanten, wo {pl.naechst} ist.",
         fr="À {c}, {p} demande à un passant où se trouve {pl.le} {pl?le|la} plus proche.",
         es="En {c}, {p} le pregunta a un transeúnte dónde está {pl.el} más {pl?cercano|cercana}.",
         zh="在{c}，{p}问一位路人最近的{pl}在哪里。",
         ja="{c}で、{p}は通りがかりの人に一番近い{pl}はどこかと尋ねます。"),
    spec("train", {"c": C, "hm": pool("time", "hm"), "n": nums(1, 12), "p": P},
         en="The train to {c} leaves {hm} from platform {n.d}, and {p} is already waiting on the platform.",
         de="Der Zug nach {c} fährt {hm} von Gleis {n.d} ab, und {p} wartet schon auf dem Bahnsteig.",
         fr="Le train pour {c} part {hm} de la voie {n.d}, et {p} attend déjà sur le quai.",
         es="El tren a {c} sale {hm} de la vía {n.d}, y {p} ya está esperando en el andén.",
         zh="开往{c}的火车{hm}从{n.d}号站台出发，{p}已经在站台上等着了。",
         ja="{c}行きの電車は{hm}{n.d}番線から出発します。{p}はもうホームで待っています。",
         questions=(
             q("when", "hm", en="At what time does the train to {c} leave?",
               de="Um wie viel Uhr fährt der Zug nach {c} ab?", fr="À quelle heure part le train pour {c} ?",
               es="¿A qué hora sale el tren a {c}?", zh="开往{c}的火车几点出发？",
               ja="{c}行きの電車は何時に出発しますか。"),
             q("who", "p", en="Who is already waiting on the platform for the train to {c}?",
               de="Wer wartet schon auf dem Bahnsteig auf den Zug nach {c}?",
               fr="Qui attend déjà le train pour {c} sur le quai ?",
               es="¿Quién está esperando ya el tren a {c} en el andén?",
               zh="已经在站台上等开往{c}的火车的是谁？", ja="ホームで{c}行きの電車を待っているのは誰ですか。"),
         )),
    spec("home", {"p": P, "d": pool("dwelling"), "adj": pool("adj", "house"), "lm": pool("place", "landmark"),
                  "c": C},
         en="{p} lives in {d.aA} next to {lm.the} in {c}.",
         de="{p} wohnt in {c} in {d.iA_dat} {lm.neben}.",
         fr="{p} habite dans {d.unA} à côté {lm.de_le}, à {c}.",
         es="{p} vive en {d.unA} al lado {lm.del}, en {c}.",
         zh="{p}住在{c}{lm}旁边的{d.oneA}里。",
         ja="{p}は{c}の{lm}の近くにある{d.A}に住んでいます。",
         questions=(
             q("who", "p", en="Who lives in {d.aA} next to {lm.the} in {c}?",
               de="Wer wohnt in {c} in {d.iA_dat} {lm.neben}?",
               fr="Qui habite dans {d.unA} à côté {lm.de_le}, à {c} ?",
               es="¿Quién vive en {d.unA} al lado {lm.del}, en {c}?",
               zh="住在{c}{lm}旁边的{d.oneA}里的是谁？", ja="{c}の{lm}の近くにある{d.A}に住んでいるのは誰ですか。"),
             q("where", "c", en="In which city does {p} live?", de="In welcher Stadt wohnt {p}?",
               fr="Dans quelle ville est-ce que {p} habite ?", es="¿En qué ciudad vive {p}?",
               zh="{p}住在哪个城市？", ja="{p}はどの町に住んでいますか。"),
         )),
    spec("library", {"p": P, "x": union(pool("animal", "zoo"), pool("animal", "farm"), pool("animal", "forest"),
                                        C),
                     "t": union(pool("time", "weekday"), pool("time", "season"))},
         en="{p} borrows a book about {x.topic} from the library {t}.",
         de="{p} leiht sich {t} in der Bibliothek ein Buch über {x.topic} aus.",
         fr="{p} emprunte un livre sur {x.topic} à la bibliothèque {t}.",
         es="{p} saca de la biblioteca un libro sobre {x.topic} {t}.",
         zh="{p}{t}都会去图书馆借一本书，书里讲的是{x}。",
         ja="{p}は{t}図書館で{x}についての本を借ります。"),
]


def frames() -> list[FrameSpec]:
    return list(_FRAMES)
