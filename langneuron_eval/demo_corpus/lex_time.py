"""Time expressions (habitual, past, future, clock times) and numbers.

Tags say which tense a time needs (``hab``, ``past``, ``fut``, ``soon``) so that a frame in the
present never gets "yesterday". A Japanese form ``"毎週月曜日|に"`` is the phrase plus its particle;
the part before ``|`` is what a question about "when" takes as its answer.
"""

from __future__ import annotations

from langneuron_eval.demo_corpus.entries import LANGS, Entry, tagset

_DAYS = [  # en, de, fr, es, zh, ja
    ("Mondays", "montags", "le lundi", "los lunes", "每周一", "毎週月曜日|に"),
    ("Tuesdays", "dienstags", "le mardi", "los martes", "每周二", "毎週火曜日|に"),
    ("Wednesdays", "mittwochs", "le mercredi", "los miércoles", "每周三", "毎週水曜日|に"),
    ("Thursdays", "donnerstags", "le jeudi", "los jueves", "每周四", "毎週木曜日|に"),
    ("Fridays", "freitags", "le vendredi", "los viernes", "每周五", "毎週金曜日|に"),
    ("Saturdays", "samstags", "le samedi", "los sábados", "每周六", "毎週土曜日|に"),
    ("Sundays", "sonntags", "le dimanche", "los domingos", "每周日", "毎週日曜日|に"),
]

# id, tags, en, de, fr, es, zh, ja
TIMES = [
    ("mornings", "hab every daily", "every morning", "jeden Morgen", "chaque matin", "cada mañana", "每天早上", "毎朝"),
    ("evenings", "hab every daily", "every evening", "jeden Abend", "chaque soir", "cada noche", "每天晚上", "毎晩"),
    ("days", "hab every daily sched", "every day", "jeden Tag", "tous les jours", "todos los días", "每天", "毎日"),
    ("afternoons", "hab every daily", "every afternoon", "jeden Nachmittag", "chaque après-midi",
     "todas las tardes", "每天下午", "毎日午後|に"),
    ("weekend", "hab every sched", "at the weekend", "am Wochenende", "le week-end", "los fines de semana",
     "每个周末", "毎週末"),
    ("months", "hab every month", "every month", "jeden Monat", "tous les mois", "todos los meses", "每个月", "毎月"),
    ("after_school", "hab study", "after school", "nach der Schule", "après l'école", "después de clase",
     "放学以后", "放課後"),
    ("after_work", "hab", "after work", "nach der Arbeit", "après le travail", "después del trabajo", "下班以后",
     "仕事のあと|で"),
    ("lunchtime", "hab daily", "at lunchtime", "mittags", "à midi", "al mediodía", "中午", "昼休み|に"),
    ("early", "hab daily", "early in the morning", "früh am Morgen", "tôt le matin", "por la mañana temprano",
     "一大早", "朝早く"),
    ("spring", "hab season grow", "in spring", "im Frühling", "au printemps", "en primavera", "春天", "春|に"),
    ("summer", "hab season", "in summer", "im Sommer", "en été", "en verano", "夏天", "夏|に"),
    ("autumn", "hab season grow", "in autumn", "im Herbst", "en automne", "en otoño", "秋天", "秋|に"),
    ("winter", "hab season", "in winter", "im Winter", "en hiver", "en invierno", "冬天", "冬|に"),
    ("yesterday", "past", "yesterday", "gestern", "hier", "ayer", "昨天", "昨日"),
    ("day_before", "past", "the day before yesterday", "vorgestern", "avant-hier", "anteayer", "前天", "おととい"),
    ("last_week", "past", "last week", "letzte Woche", "la semaine dernière", "la semana pasada", "上个星期", "先週"),
    ("last_month", "past", "last month", "letzten Monat", "le mois dernier", "el mes pasado", "上个月", "先月"),
    ("last_year", "past", "last year", "letztes Jahr", "l'année dernière", "el año pasado", "去年", "去年"),
    ("last_summer", "past", "last summer", "letzten Sommer", "l'été dernier", "el verano pasado", "去年夏天",
     "去年の夏"),
    ("last_winter", "past", "last winter", "letzten Winter", "l'hiver dernier", "el invierno pasado", "去年冬天",
     "去年の冬"),
    ("last_friday", "past", "last Friday", "letzten Freitag", "vendredi dernier", "el viernes pasado",
     "上个星期五", "先週の金曜日|に"),
    ("last_saturday", "past", "last Saturday", "letzten Samstag", "samedi dernier", "el sábado pasado",
     "上个星期六", "先週の土曜日|に"),
    ("last_sunday", "past", "last Sunday", "letzten Sonntag", "dimanche dernier", "el domingo pasado",
     "上个星期天", "先週の日曜日|に"),
    ("yesterday_evening", "past", "yesterday evening", "gestern Abend", "hier soir", "anoche", "昨天晚上",
     "昨日の夜"),
    ("yesterday_morning", "past", "yesterday morning", "gestern Morgen", "hier matin", "ayer por la mañana",
     "昨天早上", "昨日の朝"),
    ("two_days_ago", "past", "two days ago", "vor zwei Tagen", "il y a deux jours", "hace dos días", "两天前",
     "二日前"),
    ("tomorrow", "fut soon", "tomorrow", "morgen", "demain", "mañana", "明天", "明日"),
    ("day_after", "fut", "the day after tomorrow", "übermorgen", "après-demain", "pasado mañana", "后天",
     "あさって"),
    ("next_week", "fut", "next week", "nächste Woche", "la semaine prochaine", "la semana que viene", "下个星期",
     "来週"),
    ("next_weekend", "fut", "next weekend", "nächstes Wochenende", "le week-end prochain",
     "el próximo fin de semana", "下个周末", "来週末"),
    ("next_month", "fut", "next month", "nächsten Monat", "le mois prochain", "el mes que viene", "下个月", "来月"),
    ("next_summer", "fut", "next summer", "nächsten Sommer", "l'été prochain", "el verano que viene", "明年夏天",
     "来年の夏"),
    ("next_saturday", "fut", "next Saturday", "nächsten Samstag", "samedi prochain", "el próximo sábado",
     "下个星期六", "来週の土曜日|に"),
    ("two_weeks", "fut", "in two weeks", "in zwei Wochen", "dans deux semaines", "dentro de dos semanas",
     "两个星期以后", "二週間後|に"),
    ("this_afternoon", "soon", "this afternoon", "heute Nachmittag", "cet après-midi", "esta tarde", "今天下午",
     "今日の午後"),
    ("tomorrow_morning", "soon", "tomorrow morning", "morgen früh", "demain matin", "mañana por la mañana",
     "明天早上", "明日の朝"),
    ("today", "soon", "today", "heute", "aujourd'hui", "hoy", "今天", "今日"),
    ("after_lunch", "soon", "after lunch", "nach dem Mittagessen", "après le déjeuner", "después de comer",
     "午饭以后", "昼ご飯のあと|で"),
    ("mon_to_fri", "sched", "from Monday to Friday", "von Montag bis Freitag", "du lundi au vendredi",
     "de lunes a viernes", "周一到周五", "月曜日から金曜日まで"),
    ("nights", "sched", "at night", "nachts", "la nuit", "por la noche", "晚上", "夜間"),
    ("mornings_work", "sched", "in the mornings", "vormittags", "le matin", "por las mañanas", "上午", "午前中"),
    ("three_days", "sched", "three days a week", "drei Tage in der Woche", "trois jours par semaine",
     "tres días a la semana", "每周三天", "週に三日"),
]

_NUM_WORDS = {
    "en": "one two three four five six seven eight nine ten eleven twelve",
    "de": "ein zwei drei vier fünf sechs sieben acht neun zehn elf zwölf",
    "fr": "un deux trois quatre cinq six sept huit neuf dix onze douze",
    "es": "un dos tres cuatro cinco seis siete ocho nueve diez once doce",
    "zh": "一 两 三 四 五 六 七 八 九 十 十一 十二",
    "ja": "一 二 三 四 五 六 七 八 九 十 十一 十二",
}
MINUTES = (10, 15, 20, 30, 40, 45, 50)


def _time(tid: str, tags: str, texts: tuple[str, ...]) -> Entry:
    forms = {}
    for lang, text in zip(LANGS, texts):
        head, _, particle = text.partition("|")
        forms[lang] = {"": head + particle, "head": head}
    return Entry(f"t_{tid}", "time", tagset("time " + tags), forms)


def entries() -> list[Entry]:
    out = [_time(tid, tags, texts) for tid, tags, *texts in TIMES]
    for i, (en, *rest) in enumerate(_DAYS):
        out.append(_time(f"day{i}", "hab every weekday", (f"on {en}", *rest)))
    for h in range(5, 12):
        tags = "clock" + (" bed" if h >= 9 else "")
        forms = {"en": {"": f"at {h} o'clock", "head": f"{h} o'clock"},
                 "de": {"": f"um {h} Uhr", "head": f"{h} Uhr"},
                 "fr": {"": f"à {h} heures", "head": f"{h} heures"},
                 "es": {"": f"a las {h}", "head": f"las {h}"},
                 "zh": {"": f"{h}点", "head": f"{h}点"},
                 "ja": {"": f"{h}時に", "head": f"{h}時"}}
        out.append(Entry(f"t_h{h}", "time", tagset("time " + tags), forms))
    for h in range(6, 12):
        for m in MINUTES:
            forms = {"en": {"": f"at {h}:{m}", "head": f"{h}:{m}"},
                     "de": {"": f"um {h}:{m} Uhr", "head": f"{h}:{m} Uhr"},
                     "fr": {"": f"à {h} h {m}", "head": f"{h} h {m}"},
                     "es": {"": f"a las {h}:{m}", "head": f"{h}:{m}"},
                     "zh": {"": f"{h}点{m}分", "head": f"{h}点{m}分"},
                     "ja": {"": f"{h}時{m}分に", "head": f"{h}時{m}分"}}
            out.append(Entry(f"t_hm{h}_{m}", "time", tagset("time hm"), forms))
    words = {lang: s.split() for lang, s in _NUM_WORDS.items()}
    for n in range(1, 100):
        forms = {lang: {"": (w[n - 1] if n <= 12 else str(n)), "d": str(n)} for lang, w in words.items()}
        out.append(Entry(f"n{n}", "num", tagset("num"), forms))
    return out
