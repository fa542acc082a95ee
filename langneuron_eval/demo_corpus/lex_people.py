"""People: names (one typical name per language for the same person), relatives and professions."""

from __future__ import annotations

from langneuron_eval.demo_corpus.entries import LANGS, Entry, tagset

# id, gender, en, de, fr, es, zh, ja -- parallel frames map a person to a language-typical name.
PERSONS = [
    ("p01", "m", "James", "Lukas", "Julien", "Javier", "王明", "田中さん"),
    ("p02", "f", "Emily", "Greta", "Camille", "Lucía", "李丽", "鈴木さん"),
    ("p03", "m", "Jack", "Matthias", "Mathieu", "Alejandro", "张伟", "佐藤さん"),
    ("p04", "f", "Sarah", "Sabine", "Amélie", "Carmen", "刘芳", "高橋さん"),
    ("p05", "m", "George", "Jürgen", "Thibault", "Diego", "谢国华", "山本さん"),
    ("p06", "f", "Megan", "Ursula", "Élodie", "Pilar", "赵静", "中村さん"),
    ("p07", "m", "Harry", "Florian", "Guillaume", "Santiago", "杨帆", "小林さん"),
    ("p08", "f", "Jessica", "Katharina", "Margaux", "Rocío", "郑红梅", "伊藤さん"),
    ("p09", "m", "Oliver", "Stefan", "François", "Joaquín", "周杰", "渡辺さん"),
    ("p10", "f", "Lucy", "Johanna", "Céline", "Marisol", "吴燕", "加藤さん"),
    ("p11", "m", "William", "Wolfgang", "Benoît", "Rodrigo", "孙浩", "山田さん"),
    ("p12", "f", "Kate", "Heike", "Sandrine", "Begoña", "郑慧", "松本さん"),
    ("p13", "m", "Edward", "Dieter", "Étienne", "Ignacio", "韩东", "井上さん"),
    ("p14", "f", "Amy", "Friederike", "Aurélie", "Guadalupe", "刘丽华", "木村さん"),
    ("p15", "m", "Matthew", "Jörg", "Jérôme", "Gonzalo", "赵晓东", "斎藤さん"),
    ("p16", "f", "Rachel", "Gudrun", "Françoise", "Montserrat", "曾晓燕", "清水さん"),
]

# id, gender, en, de (nom[/acc-dat form of weak nouns]), fr "g:noun", es, zh, ja (polite, someone else's family),
# split key: en/zh/ja do not mark the gender of cousins, friends and neighbours.
RELATIVES = [
    ("mother", "f", "mother", "Mutter", "f:mère", "madre", "妈妈", "お母さん", ""),
    ("father", "m", "father", "Vater", "m:père", "padre", "爸爸", "お父さん", ""),
    ("brother", "m", "brother", "Bruder", "m:frère", "hermano", "哥哥", "お兄さん", ""),
    ("sister", "f", "sister", "Schwester", "f:sœur", "hermana", "姐姐", "お姉さん", ""),
    ("grandmother", "f", "grandmother", "Großmutter", "f:grand-mère", "abuela", "奶奶", "おばあさん", ""),
    ("grandfather", "m", "grandfather", "Großvater", "m:grand-père", "abuelo", "爷爷", "おじいさん", ""),
    ("uncle", "m", "uncle", "Onkel", "m:oncle", "tío", "叔叔", "おじさん", ""),
    ("aunt", "f", "aunt", "Tante", "f:tante", "tía", "阿姨", "おばさん", ""),
    ("cousin_m", "m", "cousin", "Cousin", "m:cousin", "primo", "表哥", "いとこ", "cousin"),
    ("cousin_f", "f", "cousin", "Cousine", "f:cousine", "prima", "表姐", "いとこ", "cousin"),
    ("friend_m", "m", "friend", "Freund", "m:ami", "amigo", "朋友", "友達", "friend"),
    ("friend_f", "f", "friend", "Freundin", "f:amie", "amiga", "朋友", "友達", "friend"),
    ("neighbour_m", "m", "neighbour", "Nachbar/Nachbarn", "m:voisin", "vecino", "邻居", "近所の人", "neighbour"),
    ("neighbour_f", "f", "neighbour", "Nachbarin", "f:voisine", "vecina", "邻居", "近所の人", "neighbour"),
]
YOUNG_RELATIVES = ("brother", "sister", "cousin_m", "cousin_f", "friend_m", "friend_f")

# How the English name is written in Chinese and Japanese, for cross-lingual questions about an English text.
EN_NAME_IN = {
    "James": ("詹姆斯", "ジェームズさん"), "Emily": ("艾米丽", "エミリーさん"), "Jack": ("杰克", "ジャックさん"),
    "Sarah": ("莎拉", "サラさん"), "George": ("乔治", "ジョージさん"), "Megan": ("梅根", "ミーガンさん"),
    "Harry": ("哈里", "ハリーさん"), "Jessica": ("杰西卡", "ジェシカさん"), "Oliver": ("奥利弗", "オリバーさん"),
    "Lucy": ("露西", "ルーシーさん"), "William": ("威廉", "ウィリアムさん"), "Kate": ("凯特", "ケイトさん"),
    "Edward": ("爱德华", "エドワードさん"), "Amy": ("艾米", "エイミーさん"), "Matthew": ("马修", "マシューさん"),
    "Rachel": ("雷切尔", "レイチェルさん"),
}

# id, workplace (a place id), en (m|f), de m|f, fr m|f, es m|f, zh, ja (m|f)
PROFESSIONS = [
    ("teacher", "school", "teacher", "Lehrer|Lehrerin", "professeur|professeure", "profesor|profesora", "老师", "教師"),
    ("doctor", "hospital", "doctor", "Arzt|Ärztin", "médecin|médecin", "médico|médica", "医生", "医者"),
    ("nurse", "hospital", "nurse", "Krankenpfleger|Krankenpflegerin", "infirmier|infirmière",
     "enfermero|enfermera", "护士", "看護師"),
    ("baker", "bakery", "baker", "Bäcker|Bäckerin", "boulanger|boulangère", "panadero|panadera", "面包师", "パン職人"),
    ("cook", "restaurant", "cook", "Koch|Köchin", "cuisinier|cuisinière", "cocinero|cocinera", "厨师", "料理人"),
    ("waiter", "cafe", "waiter|waitress", "Kellner|Kellnerin", "serveur|serveuse", "camarero|camarera", "服务员",
     "ウェイター|ウェイトレス"),
    ("librarian", "library", "librarian", "Bibliothekar|Bibliothekarin", "bibliothécaire|bibliothécaire",
     "bibliotecario|bibliotecaria", "图书管理员", "司書"),
    ("pharmacist", "pharmacy", "pharmacist", "Apotheker|Apothekerin", "pharmacien|pharmacienne",
     "farmacéutico|farmacéutica", "药剂师", "薬剤師"),
    ("pilot", "airport", "pilot", "Pilot|Pilotin", "pilote|pilote", "piloto|piloto", "飞行员", "パイロット"),
    ("police", "police_station", "police officer", "Polizist|Polizistin", "policier|policière", "policía|policía",
     "警察", "警察官"),
    ("mechanic", "garage", "mechanic", "Mechaniker|Mechanikerin", "mécanicien|mécanicienne", "mecánico|mecánica",
     "汽车修理工", "整備士"),
    ("bank_clerk", "bank", "bank clerk", "Bankangestellter|Bankangestellte", "employé de banque|employée de banque",
     "empleado de banco|empleada de banco", "银行职员", "銀行員"),
    ("vet", "animal_clinic", "vet", "Tierarzt|Tierärztin", "vétérinaire|vétérinaire", "veterinario|veterinaria",
     "兽医", "獣医"),
    ("gardener", "park", "gardener", "Gärtner|Gärtnerin", "jardinier|jardinière", "jardinero|jardinera", "园丁",
     "庭師"),
    ("cashier", "supermarket", "cashier", "Kassierer|Kassiererin", "caissier|caissière", "cajero|cajera", "收银员",
     "レジ係"),
    ("engineer", "factory", "engineer", "Ingenieur|Ingenieurin", "ingénieur|ingénieure", "ingeniero|ingeniera",
     "工程师", "エンジニア"),
    ("bookseller", "bookshop", "bookseller", "Buchhändler|Buchhändlerin", "libraire|libraire", "librero|librera",
     "书店店员", "書店員"),
    ("receptionist", "hotel", "receptionist", "Rezeptionist|Rezeptionistin", "réceptionniste|réceptionniste",
     "recepcionista|recepcionista", "前台接待员", "フロント係"),
]


def _mf(spec: str) -> tuple[str, str]:
    m, _, f = spec.partition("|")
    return m, f or m


def entries() -> list[Entry]:
    out: list[Entry] = []
    for pid, g, *names in PERSONS:
        forms = {lang: {"": name, "g": g} for lang, name in zip(LANGS, names)}
        for lang, other in zip(("de", "fr", "es", "zh", "ja"), ("", "", "", *EN_NAME_IN[names[0]])):
            forms[lang]["en_name"] = other or names[0]  # the English name as written in this language
        out.append(Entry(pid, "person", tagset(f"person {g}"), forms))
    for rid, g, en, de, fr, es, zh, ja, key in RELATIVES:
        de_nom, _, de_obl = de.partition("/")
        fr_g, _, fr_n = fr.partition(":")
        tags = "relative young" if rid in YOUNG_RELATIVES else "relative"
        forms = {"en": {"": en, "g": g},
                 "de": {"": de_nom, "obl": de_obl or de_nom, "g": g},
                 "fr": {"": fr_n, "g": fr_g},
                 "es": {"": es, "g": g},
                 "zh": {"": zh, "g": g},
                 "ja": {"": ja, "g": g}}
        out.append(Entry(f"r_{rid}", "relative", tagset(tags), forms, f"r_{key}" if key else ""))
    for pid, wp, en, de, fr, es, zh, ja in PROFESSIONS:
        forms = {lang: {"mf": _mf(spec)} for lang, spec in
                 (("en", en), ("de", de), ("fr", fr), ("es", es), ("zh", zh), ("ja", ja))}
        out.append(Entry(f"job_{pid}", "profession", tagset(f"profession wp_{wp}"), forms))
    return out
