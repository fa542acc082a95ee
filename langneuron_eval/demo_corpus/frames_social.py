"""Frames about family and friends: visits, calls, meetings, presents, post, moods, age and siblings."""

from __future__ import annotations

from langneuron_eval.demo_corpus.frame_spec import FrameSpec, ids, nums, pool, q, spec, union

P = pool("person")
R = pool("relative")
C = pool("city")
T_DAYS = pool("time", "weekday")
T_VISIT = union(pool("time", "season"), ids("t_months", "t_weekend"), T_DAYS)
T_CALL = union(ids("t_evenings", "t_after_work", "t_weekend", "t_lunchtime"), T_DAYS)
T_MEET = union(T_DAYS, ids("t_weekend", "t_after_work", "t_after_school", "t_lunchtime"))


_FRAMES: list[FrameSpec] = [
    spec("visit", {"p": P, "r": R, "c": C, "t": T_VISIT},
         en="{p} visits {r} in {c} {t}.",
         de="{p} besucht {t} {r.acc} in {c}.",
         fr="{p} rend visite à {r} à {c} {t}.",
         es="{p} visita a {r} en {c} {t}.",
         zh="{p}{t}都是去{c}看望{r}的。",
         ja="{p}は{t}{c}に住んでいる{r}を訪ねます。",
         questions=(
             q("who", "p", en="Who visits {r} in {c} {t}?", de="Wer besucht {t} in {c} {r.acc}?",
               fr="Qui rend visite à {r} à {c} {t} ?", es="¿Quién visita a {r} en {c} {t}?",
               zh="{t}去{c}看望自己的{r}的人是谁？", ja="{t}{c}に住んでいる{r}を訪ねるのは誰ですか。"),
             q("where", "c", en="In which city does {p} visit {r} {t}?",
               de="In welcher Stadt besucht {p} {t} {r.acc}?",
               fr="Dans quelle ville est-ce que {p} rend visite à {r} {t} ?",
               es="¿En qué ciudad visita {p} a {r} {t}?", zh="{p}{t}去看望{r}的那个城市叫什么名字？",
               ja="{p}は{t}どの町に住んでいる{r}を訪ねますか。"),
             q("when", "t", en="When does {p} visit {r} in {c}?", de="Wann besucht {p} {r.acc} in {c}?",
               fr="Quand est-ce que {p} rend visite à {r} à {c} ?", es="¿Cuándo visita {p} a {r} en {c}?",
               zh="{p}是什么时候去{c}看望{r}的？", ja="{p}はいつ{c}に住んでいる{r}を訪ねますか。"),
         )),
    spec("call", {"p": P, "r": R, "t": T_CALL},
         en="{p} phones {r} {t}, and the call always lasts about an hour.",
         de="{p} ruft {t} {r.acc} an, und das Gespräch dauert immer etwa eine Stunde.",
         fr="{p} appelle {r} {t}, et la conversation dure toujours environ une heure.",
         es="{p} llama a {r} {t}, y la conversación siempre dura más o menos una hora.",
         zh="{p}{t}给{r}打电话，每次都聊一个小时左右。",
         ja="{p}は{t}{r}に電話をかけて、いつも一時間ぐらい話します。"),
    spec("meet", {"p": P, "r": R, "pl": pool("place", "meet"), "t": T_MEET},
         en="{p} meets {r} {pl.loc} {t}.",
         de="{p} trifft sich {t} mit {r.dat} {pl.loc}.",
         fr="{p} a rendez-vous avec {r} {pl.loc} {t}.",
         es="{p} se encuentra con {r} {pl.loc} {t}.",
         zh="{p}{t}都是和{r}在{pl.loc}见面的。",
         ja="{p}は{t}{pl}で{r}に会います。",
         questions=(
             q("who", "p", en="Who meets {r} {pl.loc} {t}?", de="Wer trifft sich {t} {pl.loc} mit {r.dat}?",
               fr="Qui a rendez-vous avec {r} {pl.loc} {t} ?", es="¿Quién se encuentra con {r} {pl.loc} {t}?",
               zh="{t}和{r}在{pl.loc}见面的是谁？", ja="{t}{pl}で{r}に会うのは誰ですか。"),
             q("where", "pl", en="Where does {p} meet {r} {t}?", de="Wo trifft sich {p} {t} mit {r.dat}?",
               fr="Où est-ce que {p} a rendez-vous avec {r} {t} ?", es="¿Dónde se encuentra {p} con {r} {t}?",
               zh="{p}{t}是在哪里和{r}见面的？", ja="{p}は{t}どこで{r}に会いますか。"),
             q("when", "t", en="When does {p} meet {r} {pl.loc}?", de="Wann trifft sich {p} mit {r.dat} {pl.loc}?",
               fr="Quand est-ce que {p} a rendez-vous avec {r} {pl.loc} ?", es="¿Cuándo se encuentra {p} con {r} {pl.loc}?",
               zh="{p}是什么时候和{r}在{pl.loc}见面的？", ja="{p}はいつ{pl}で{r}に会いますか。"),
         )),
    spec("gift", {"p": P, "r": R, "g": pool("thing", "gift")},
         en="{p} gives {r} {g.a} for {r?his|her} birthday.",
         de="{p} schenkt {r.dat} {g.i_acc} zum Geburtstag.",
         fr="{p} offre {g.un} à {r} pour son anniversaire.",
         es="{p} le regala {g.un} a {r} por su cumpleaños.",
         zh="{p}送给{r}{g.one}，作为{r?他|她}的生日礼物。",
         ja="{p}は{r}の誕生日に{g}をプレゼントします。",
         questions=(
             q("who", "p", en="Who gives {r} {g.a} for {r?his|her} birthday?",
               de="Wer schenkt {r.dat} {g.i_acc} zum Geburtstag?",
               fr="Qui offre {g.un} à {r} pour son anniversaire ?",
               es="¿Quién le regala {g.un} a {r} por su cumpleaños?",
               zh="送给{r}{g.one}作为生日礼物的人是谁？", ja="{r}の誕生日に{g}をプレゼントするのは誰ですか。"),
             q("what", "g", en="What does {p} give {r} for {r?his|her} birthday?",
               de="Was schenkt {p} {r.dat} zum Geburtstag?",
               fr="Qu'est-ce que {p} offre à {r} pour son anniversaire ?",
               es="¿Qué le regala {p} a {r} por su cumpleaños?",
               zh="{p}送给{r}的生日礼物是什么？", ja="{p}は{r}の誕生日に何をプレゼントしますか。"),
         )),
    spec("post", {"t": pool("time", "past"), "p": P, "x": pool("thing", "post"), "r": R, "c": C},
         en="{t}, {p} sent {x.a} to {r} in {c}.",
         de="{t} hat {p} {r.dat} in {c} {x.i_acc} geschickt.",
         fr="{t}, {p} a envoyé {x.un} à {r}, qui habite à {c}.",
         es="{t}, {p} le envió {x.un} a {r}, que vive en {c}.",
         zh="{t}，{p}往{c}寄了{x.one}，是给{r}的。",
         ja="{t}、{p}は{c}に住んでいる{r}に{x}を送りました。",
         questions=(
             q("who", "p", en="Who sent {x.a} to {r} in {c} {t}?", de="Wer hat {t} {r.dat} in {c} {x.i_acc} geschickt?",
               fr="Qui a envoyé {x.un} à {r} {t} ?", es="¿Quién le envió {x.un} a {r} {t}?",
               zh="{t}往{c}寄{x.one}给{r}的是谁？", ja="{t}{c}に住んでいる{r}に{x}を送ったのは誰ですか。"),
             q("what", "x", en="What did {p} send to {r} in {c} {t}?", de="Was hat {p} {t} {r.dat} in {c} geschickt?",
               fr="Qu'est-ce que {p} a envoyé à {r} {t} ?", es="¿Qué le envió {p} a {r} {t}?",
               zh="{t}，{p}给住在{c}的{r}寄了什么？", ja="{t}、{p}は{c}に住んでいる{r}に何を送りましたか。"),
             q("where", "c", en="In which city does {p}'s {r.bare} live?", de="In welcher Stadt wohnt {r.d_nom} von {p}?",
               fr="Dans quelle ville habite {r.le} de {p} ?", es="¿En qué ciudad vive {r.el} de {p}?",
               zh="{p}的{r}住在哪个城市？", ja="{p}の{r}はどの町に住んでいますか。"),
         )),
    spec("mood", {"p": P, "s": pool("state")},
         en="{p} {s}.", de="{p} {s}.", fr="{p} {s}.", es="{p} {s}.", zh="{p}{s}。", ja="{p}は{s}。"),
    spec("mood_rel", {"p": P, "s": pool("state_rel"), "r": R},
         en="{p} {s}.", de="{p} {s}.", fr="{p} {s}.", es="{p} {s}.", zh="{p}{s}。", ja="{p}は{s}。"),
    spec("mood_city", {"p": P, "s": pool("state_city"), "c": C},
         en="{p} {s}.", de="{p} {s}.", fr="{p} {s}.", es="{p} {s}.", zh="{p}{s}。", ja="{p}は{s}。"),
    spec("siblings", {"p": P, "n": nums(2, 4), "m": nums(2, 4), "c": C},
         en="{p} has {n} brothers and {m} sisters, and they all live in {c}.",
         de="{p} hat {n} Brüder und {m} Schwestern, und alle wohnen in {c}.",
         fr="{p} a {n} frères et {m} sœurs, et ils habitent tous à {c}.",
         es="{p} tiene {n} hermanos y {m} hermanas, y todos viven en {c}.",
         zh="{p}有{n}个兄弟和{m}个姐妹，他们都住在{c}。",
         ja="{p}には兄弟が{n}人と姉妹が{m}人いて、みんな{c}に住んでいます。"),
    spec("age", {"p": P, "n": nums(8, 14) + nums(25, 40), "r": R, "c": C},
         en="{p} is {n.d} years old and lives with {r} in {c}.",
         de="{p} ist {n.d} Jahre alt und wohnt mit {r.dat} in {c}.",
         fr="{p} a {n.d} ans et habite avec {r} à {c}.",
         es="{p} tiene {n.d} años y vive con {r} en {c}.",
         zh="{p}今年{n.d}岁，和{r}一起住在{c}。",
         ja="{p}は{n.d}歳で、{r}と一緒に{c}に住んでいます。"),
]


def frames() -> list[FrameSpec]:
    return list(_FRAMES)
