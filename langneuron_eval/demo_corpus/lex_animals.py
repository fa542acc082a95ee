"""Animals. Tags name the place ids where the animal is plausibly seen (``lake``, ``farm``, ``zoo``...),
``pet`` (kept at home, used in the singular), ``feed`` (fed by people) and ``fur``/``feather``/``shell``
(which colour adjectives fit). German weak nouns (Löwe, Affe, Elefant, Bär) are only ever used in the
plural, where they are regular.
"""

from __future__ import annotations

from langneuron_eval.demo_corpus.entries import Entry, noun

# id, tags, en, de, fr, es, zh (noun|measure word), ja (noun|counter)
ANIMALS = [
    ("dog", "pet fur", "dog", "m:Hund|Hunde", "m:chien", "m:perro", "狗|只", "犬|匹"),
    ("cat", "pet fur", "cat", "f:Katze|Katzen", "m:chat", "m:gato", "猫|只", "猫|匹"),
    ("rabbit", "pet fur farm feed", "rabbit", "n:Kaninchen|Kaninchen", "m:lapin", "m:conejo", "兔子|只", "うさぎ|匹"),
    ("hamster", "pet fur", "hamster", "m:Hamster|Hamster", "m:*hamster", "m:hámster|hámsteres", "仓鼠|只",
     "ハムスター|匹"),
    ("parrot", "pet feather", "parrot", "m:Papagei|Papageien", "m:perroquet", "m:loro", "鹦鹉|只", "オウム|羽"),
    ("tortoise", "pet shell", "tortoise", "f:Schildkröte|Schildkröten", "f:tortue", "f:tortuga", "乌龟|只", "カメ|匹"),
    ("horse", "farm feed", "horse", "n:Pferd|Pferde", "m:cheval|chevaux", "m:caballo", "马|匹", "馬|頭"),
    ("cow", "farm feed", "cow", "f:Kuh|Kühe", "f:vache", "f:vaca", "奶牛|头", "牛|頭"),
    ("pig", "farm feed", "pig", "n:Schwein|Schweine", "m:cochon", "m:cerdo", "猪|头", "豚|頭"),
    ("sheep", "farm feed", "sheep|sheep", "n:Schaf|Schafe", "m:mouton", "f:oveja", "绵羊|只", "羊|頭"),
    ("goat", "farm feed", "goat", "f:Ziege|Ziegen", "f:chèvre", "f:cabra", "山羊|只", "ヤギ|頭"),
    ("hen", "farm feed", "hen", "n:Huhn|Hühner", "f:poule", "f:gallina", "母鸡|只", "ニワトリ|羽"),
    ("duck", "lake pond park farm feed", "duck", "f:Ente|Enten", "m:canard", "m:pato", "鸭子|只", "アヒル|羽"),
    ("swan", "lake pond feed", "swan", "m:Schwan|Schwäne", "m:cygne", "m:cisne", "天鹅|只", "白鳥|羽"),
    ("goose", "farm lake feed", "goose|geese", "f:Gans|Gänse", "f:oie", "f:oca", "鹅|只", "ガチョウ|羽"),
    ("frog", "lake pond garden", "frog", "m:Frosch|Frösche", "f:grenouille", "f:rana", "青蛙|只", "カエル|匹"),
    ("squirrel", "park forest garden", "squirrel", "n:Eichhörnchen|Eichhörnchen", "m:écureuil", "f:ardilla",
     "松鼠|只", "リス|匹"),
    ("fox", "forest", "fox", "m:Fuchs|Füchse", "m:renard", "m:zorro", "狐狸|只", "キツネ|匹"),
    ("deer", "forest", "deer|deer", "m:Hirsch|Hirsche", "m:cerf", "m:ciervo", "鹿|头", "シカ|頭"),
    ("owl", "forest", "owl", "f:Eule|Eulen", "m:*hibou|hiboux", "m:búho", "猫头鹰|只", "フクロウ|羽"),
    ("hedgehog", "garden park", "hedgehog", "m:Igel|Igel", "m:*hérisson", "m:erizo", "刺猬|只", "ハリネズミ|匹"),
    ("elephant", "zoo", "elephant", "m:Elefant|Elefanten", "m:éléphant", "m:elefante", "大象|头", "ゾウ|頭"),
    ("giraffe", "zoo", "giraffe", "f:Giraffe|Giraffen", "f:girafe", "f:jirafa", "长颈鹿|只", "キリン|頭"),
    ("lion", "zoo", "lion", "m:Löwe|Löwen", "m:lion", "m:león", "狮子|头", "ライオン|頭"),
    ("monkey", "zoo", "monkey", "m:Affe|Affen", "m:singe", "m:mono", "猴子|只", "サル|匹"),
    ("penguin", "zoo", "penguin", "m:Pinguin|Pinguine", "m:manchot", "m:pingüino", "企鹅|只", "ペンギン|羽"),
    ("zebra", "zoo", "zebra", "n:Zebra|Zebras", "m:zèbre", "f:cebra", "斑马|匹", "シマウマ|頭"),
    ("kangaroo", "zoo", "kangaroo", "n:Känguru|Kängurus", "m:kangourou", "m:canguro", "袋鼠|只", "カンガルー|頭"),
    ("bear", "zoo", "bear", "m:Bär|Bären", "m:ours", "m:oso", "熊|头", "クマ|頭"),
    ("flamingo", "zoo", "flamingo", "m:Flamingo|Flamingos", "m:flamant rose|flamants roses", "m:flamenco",
     "火烈鸟|只", "フラミンゴ|羽"),
]


def entries() -> list[Entry]:
    return [noun(f"an_{row[0]}", "animal " + row[1], *row[2:]) for row in ANIMALS]
