"""Food: fruit and vegetables, bakery items, drinks (with their cup or glass) and cooked dishes.

Tags say which frames may use a word: ``eat`` (eaten one at a time), ``buy`` (bought by the
piece at a market), ``basket``, ``math`` (countable in word problems), ``plant`` (grown in a garden).
"""

from __future__ import annotations

from langneuron_eval.demo_corpus.entries import (
    Entry,
    cjk_noun,
    de_noun,
    en_noun,
    es_noun,
    fr_noun,
    noun,
    tagset,
)

# id, tags, en, de, fr, es, zh (noun|measure word), ja (noun|counter)
FOODS = [
    ("apple", "eat buy basket math", "apple", "m:Apfel|Äpfel", "f:pomme", "f:manzana", "苹果|个", "りんご|個"),
    ("banana", "eat buy basket math", "banana", "f:Banane|Bananen", "f:banane", "m:plátano", "香蕉|根", "バナナ|本"),
    ("orange", "eat buy basket math", "orange", "f:Orange|Orangen", "f:orange", "f:naranja", "橙子|个",
     "オレンジ|個"),
    ("pear", "eat buy basket math", "pear", "f:Birne|Birnen", "f:poire", "f:pera", "梨|个", "梨|個"),
    ("peach", "eat buy basket math", "peach", "m:Pfirsich|Pfirsiche", "f:pêche", "m:melocotón", "桃子|个", "桃|個"),
    ("plum", "eat buy basket", "plum", "f:Pflaume|Pflaumen", "f:prune", "f:ciruela", "李子|个", "すもも|個"),
    ("mandarin", "eat buy basket math", "mandarin", "f:Mandarine|Mandarinen", "f:mandarine", "f:mandarina",
     "橘子|个", "みかん|個"),
    ("kiwi", "eat buy basket", "kiwi", "f:Kiwi|Kiwis", "m:kiwi", "m:kiwi", "猕猴桃|个", "キウイ|個"),
    ("mango", "eat buy basket", "mango|mangoes", "f:Mango|Mangos", "f:mangue", "m:mango", "芒果|个", "マンゴー|個"),
    ("apricot", "eat buy basket", "apricot", "f:Aprikose|Aprikosen", "m:abricot", "m:albaricoque", "杏|个",
     "あんず|個"),
    ("egg", "eat buy basket math", "egg", "n:Ei|Eier", "m:œuf", "m:huevo", "鸡蛋|个", "卵|個"),
    ("roll", "eat", "bread roll", "n:Brötchen|Brötchen", "m:petit pain|petits pains", "m:panecillo", "小面包|个",
     "パン|個"),
    ("croissant", "eat", "croissant", "n:Croissant|Croissants", "m:croissant", "m:cruasán", "牛角面包|个",
     "クロワッサン|個"),
    ("biscuit", "eat math", "biscuit", "m:Keks|Kekse", "m:biscuit", "f:galleta", "饼干|块", "クッキー|枚"),
    ("sausage", "eat buy", "sausage", "f:Wurst|Würste", "f:saucisse", "f:salchicha", "香肠|根", "ソーセージ|本"),
    ("sandwich", "eat", "sandwich", "n:Sandwich|Sandwiches", "m:sandwich|sandwichs", "m:sándwich|sándwiches",
     "三明治|个", "サンドイッチ|個"),
    ("tomato", "eat buy basket plant", "tomato|tomatoes", "f:Tomate|Tomaten", "f:tomate", "m:tomate", "西红柿|个",
     "トマト|個"),
    ("carrot", "eat buy basket plant", "carrot", "f:Karotte|Karotten", "f:carotte", "f:zanahoria", "胡萝卜|根",
     "にんじん|本"),
    ("potato", "buy basket plant", "potato|potatoes", "f:Kartoffel|Kartoffeln",
     "f:pomme de terre|pommes de terre", "f:patata", "土豆|个", "じゃがいも|個"),
    ("onion", "buy basket plant", "onion", "f:Zwiebel|Zwiebeln", "m:oignon", "f:cebolla", "洋葱|个", "玉ねぎ|個"),
    ("cucumber", "buy basket", "cucumber", "f:Gurke|Gurken", "m:concombre", "m:pepino", "黄瓜|根", "きゅうり|本"),
    ("lemon", "buy basket math", "lemon", "f:Zitrone|Zitronen", "m:citron", "m:limón", "柠檬|个", "レモン|個"),
    ("strawberry", "buy plant math", "strawberry", "f:Erdbeere|Erdbeeren", "f:fraise", "f:fresa", "草莓|颗",
     "いちご|個"),
    ("cherry", "buy math", "cherry", "f:Kirsche|Kirschen", "f:cerise", "f:cereza", "樱桃|颗", "さくらんぼ|個"),
    ("mushroom", "buy basket", "mushroom", "m:Pilz|Pilze", "m:champignon", "m:champiñón", "蘑菇|个", "きのこ|個"),
]

# id, container (cup or glass), en, de, fr, es, zh, ja
DRINKS = [
    ("coffee", "cup", "coffee", "m:Kaffee", "m:café", "m:café", "咖啡", "コーヒー"),
    ("tea", "cup", "tea", "m:Tee", "m:thé", "m:té", "茶", "お茶"),
    ("cocoa", "cup", "hot chocolate", "m:Kakao", "m:chocolat chaud", "m:chocolate caliente", "热巧克力", "ココア"),
    ("milk", "glass", "milk", "f:Milch", "m:lait", "f:leche", "牛奶", "牛乳"),
    ("water", "glass", "water", "n:Wasser", "f:eau", "f:agua", "水", "水"),
    ("orange_juice", "glass", "orange juice", "m:Orangensaft", "m:jus d'orange", "m:zumo de naranja", "橙汁",
     "オレンジジュース"),
    ("apple_juice", "glass", "apple juice", "m:Apfelsaft", "m:jus de pomme", "m:zumo de manzana", "苹果汁",
     "りんごジュース"),
    ("lemonade", "glass", "lemonade", "f:Limonade", "f:limonade", "f:limonada", "柠檬水", "レモネード"),
]

# id, tags, en, de "g:noun|cooking verb" (backt / kocht / macht), fr, es, zh noun|measure word, ja
DISHES = [
    ("cake", "cook", "cake", "m:Kuchen|backt", "m:gâteau|gâteaux", "m:pastel", "蛋糕|个", "ケーキ"),
    ("apple_pie", "cook", "apple pie", "m:Apfelkuchen|backt", "f:tarte aux pommes|tartes aux pommes",
     "f:tarta de manzana|tartas de manzana", "苹果派|个", "アップルパイ"),
    ("soup", "cook restaurant", "vegetable soup", "f:Gemüsesuppe|kocht", "f:soupe de légumes|soupes de légumes",
     "f:sopa de verduras|sopas de verduras", "蔬菜汤|碗", "野菜スープ"),
    ("salad", "cook restaurant", "salad", "m:Salat|macht", "f:salade", "f:ensalada", "沙拉|份", "サラダ"),
    ("pizza", "cook restaurant", "pizza", "f:Pizza|backt", "f:pizza", "f:pizza", "比萨饼|个", "ピザ"),
    ("omelette", "cook restaurant", "omelette", "n:Omelett|macht", "f:omelette", "f:tortilla", "煎蛋卷|个",
     "オムレツ"),
    ("curry", "cook restaurant", "curry", "n:Curry|kocht", "m:curry", "m:curry", "咖喱|份", "カレー"),
    ("stew", "cook restaurant", "stew", "m:Eintopf|kocht", "m:ragoût", "m:guiso", "炖菜|份", "シチュー"),
    ("paella", "cook restaurant", "paella", "f:Paella|kocht", "f:paella", "f:paella", "西班牙海鲜饭|份", "パエリア"),
    ("fruit_salad", "cook restaurant", "fruit salad", "m:Obstsalat|macht", "f:salade de fruits|salades de fruits",
     "f:macedonia", "水果沙拉|份", "フルーツサラダ"),
]


def entries() -> list[Entry]:
    out = [noun(fid, "food " + tags, *forms) for fid, tags, *forms in FOODS]
    for did, cont, en, de, fr, es, zh, ja in DRINKS:
        out.append(noun(f"drink_{did}", f"drink {cont}", en, de, fr, es, zh, ja + "|杯"))
    for did, tags, en, de, fr, es, zh, ja in DISHES:
        de_spec, _, verb = de.partition("|")
        forms = {"en": en_noun(en), "de": {**de_noun(de_spec), "verb": verb}, "fr": fr_noun(fr),
                 "es": es_noun(es), "zh": cjk_noun(zh), "ja": cjk_noun(ja)}
        out.append(Entry(f"dish_{did}", "noun", tagset(f"dish {tags}"), forms))
    return out
