"""Things: everyday objects, clothes, reading matter, post, gifts, plants and small countables.

Tags say which frames may use a word: ``lose`` (can be mislaid), ``gift``, ``belong`` (lies somewhere
and belongs to someone), ``price`` (sold in a shop), ``post`` (sent by post), ``read``, ``cloth``,
``plant`` and ``math`` (countable in word problems).
"""

from __future__ import annotations

from langneuron_eval.demo_corpus.entries import Entry, noun

# id, tags, en, de, fr, es, zh (noun|measure word), ja (noun|counter)
THINGS = [
    ("key", "lose belong", "key", "m:Schlüssel|Schlüssel", "f:clé", "f:llave", "钥匙|把", "鍵|本"),
    ("phone", "lose belong price", "phone", "n:Handy|Handys", "m:téléphone", "m:teléfono", "手机|部",
     "携帯電話|台"),
    ("wallet", "lose gift belong price", "wallet", "f:Geldbörse|Geldbörsen", "m:portefeuille", "f:cartera",
     "钱包|个", "財布|個"),
    ("umbrella", "lose gift belong price", "umbrella", "m:Regenschirm|Regenschirme", "m:parapluie",
     "m:paraguas|paraguas", "雨伞|把", "傘|本"),
    ("bag", "lose gift belong price", "bag", "f:Tasche|Taschen", "m:sac", "m:bolso", "包|个", "かばん|個"),
    ("watch", "lose gift belong price", "watch", "f:Armbanduhr|Armbanduhren", "f:montre", "m:reloj", "手表|块",
     "腕時計|個"),
    ("ticket", "lose", "train ticket", "f:Fahrkarte|Fahrkarten", "m:billet de train|billets de train",
     "m:billete de tren|billetes de tren", "火车票|张", "切符|枚"),
    ("notebook", "lose belong", "notebook", "n:Heft|Hefte", "m:cahier", "m:cuaderno", "笔记本|本", "ノート|冊"),
    ("pen", "lose gift belong math", "pen", "m:Füller|Füller", "m:stylo", "m:bolígrafo", "钢笔|支", "ペン|本"),
    ("pencil", "math", "pencil", "m:Bleistift|Bleistifte", "m:crayon", "m:lápiz", "铅笔|支", "鉛筆|本"),
    ("hat", "lose gift belong price cloth", "hat", "m:Hut|Hüte", "m:chapeau|chapeaux", "m:sombrero", "帽子|顶",
     "帽子|個"),
    ("scarf", "lose gift belong price cloth", "scarf|scarves", "m:Schal|Schals", "f:écharpe", "f:bufanda",
     "围巾|条", "マフラー|本"),
    ("jacket", "belong price cloth", "jacket", "f:Jacke|Jacken", "f:veste", "f:chaqueta", "夹克|件",
     "ジャケット|着"),
    ("sweater", "belong price cloth", "jumper", "m:Pullover|Pullover", "m:pull", "m:jersey|jerséis", "毛衣|件",
     "セーター|着"),
    ("dress", "price cloth", "dress", "n:Kleid|Kleider", "f:robe", "m:vestido", "连衣裙|条", "ワンピース|着"),
    ("shirt", "price cloth", "shirt", "n:Hemd|Hemden", "f:chemise", "f:camisa", "衬衫|件", "シャツ|枚"),
    ("coat", "belong price cloth", "coat", "m:Mantel|Mäntel", "m:manteau|manteaux", "m:abrigo", "大衣|件",
     "コート|着"),
    ("skirt", "price cloth", "skirt", "m:Rock|Röcke", "f:jupe", "f:falda", "裙子|条", "スカート|枚"),
    ("book", "gift belong read post math", "book", "n:Buch|Bücher", "m:livre", "m:libro", "书|本", "本|冊"),
    ("newspaper", "read", "newspaper", "f:Zeitung|Zeitungen", "m:journal|journaux", "m:periódico", "报纸|份",
     "新聞|部"),
    ("magazine", "read", "magazine", "f:Zeitschrift|Zeitschriften", "m:magazine", "f:revista", "杂志|本",
     "雑誌|冊"),
    ("comic", "read", "comic", "m:Comic|Comics", "f:bande dessinée|bandes dessinées", "m:cómic|cómics",
     "漫画书|本", "漫画|冊"),
    ("novel", "read", "novel", "m:Roman|Romane", "m:roman", "f:novela", "小说|本", "小説|冊"),
    ("letter", "read post", "letter", "m:Brief|Briefe", "f:lettre", "f:carta", "信|封", "手紙|通"),
    ("postcard", "post", "postcard", "f:Postkarte|Postkarten", "f:carte postale|cartes postales", "f:postal",
     "明信片|张", "絵はがき|枚"),
    ("parcel", "post", "parcel", "n:Paket|Pakete", "m:colis", "m:paquete", "包裹|个", "小包|個"),
    ("photo", "post", "photo", "n:Foto|Fotos", "f:photo", "f:foto", "照片|张", "写真|枚"),
    ("lamp", "gift belong price", "lamp", "f:Lampe|Lampen", "f:lampe", "f:lámpara", "台灯|盏", "ランプ|台"),
    ("candle", "gift math", "candle", "f:Kerze|Kerzen", "f:bougie", "f:vela", "蜡烛|根", "ろうそく|本"),
    ("painting", "gift", "painting", "n:Bild|Bilder", "m:tableau|tableaux", "m:cuadro", "画|幅", "絵|枚"),
    ("houseplant", "gift", "plant", "f:Zimmerpflanze|Zimmerpflanzen", "f:plante verte|plantes vertes",
     "f:planta", "盆栽|盆", "鉢植え|個"),
    ("mug", "gift belong price", "mug", "f:Tasse|Tassen", "f:tasse", "f:taza", "杯子|个", "マグカップ|個"),
    ("necklace", "gift price", "necklace", "f:Halskette|Halsketten", "m:collier", "m:collar", "项链|条",
     "ネックレス|本"),
    ("camera", "lose gift belong price", "camera", "f:Kamera|Kameras", "m:appareil photo|appareils photo",
     "f:cámara", "相机|台", "カメラ|台"),
    ("bicycle", "belong price", "bicycle", "n:Fahrrad|Fahrräder", "m:vélo", "f:bicicleta", "自行车|辆",
     "自転車|台"),
    ("stamp", "math", "stamp", "f:Briefmarke|Briefmarken", "m:timbre", "m:sello", "邮票|张", "切手|枚"),
    ("sticker", "math", "sticker", "m:Aufkleber|Aufkleber", "m:autocollant", "f:pegatina", "贴纸|张", "シール|枚"),
    ("shell", "math", "shell", "f:Muschel|Muscheln", "m:coquillage", "f:concha", "贝壳|个", "貝殻|個"),
    ("balloon", "math", "balloon", "m:Luftballon|Luftballons", "m:ballon", "m:globo", "气球|个", "風船|個"),
    ("marble", "math", "marble", "f:Murmel|Murmeln", "f:bille", "f:canica", "弹珠|颗", "ビー玉|個"),
    ("flower", "math", "flower", "f:Blume|Blumen", "f:fleur", "f:flor", "花|朵", "花|本"),
    ("toy_car", "math", "toy car", "n:Spielzeugauto|Spielzeugautos", "f:petite voiture|petites voitures",
     "m:cochecito", "玩具车|辆", "ミニカー|台"),
    ("crayon", "math", "crayon", "m:Buntstift|Buntstifte", "m:crayon de couleur|crayons de couleur",
     "m:lápiz de color|lápices de color", "彩色铅笔|支", "色鉛筆|本"),
    ("rose", "plant", "rose", "f:Rose|Rosen", "f:rose", "f:rosa", "玫瑰|朵", "バラ|本"),
    ("tulip", "plant", "tulip", "f:Tulpe|Tulpen", "f:tulipe", "m:tulipán", "郁金香|朵", "チューリップ|本"),
    ("sunflower", "plant", "sunflower", "f:Sonnenblume|Sonnenblumen", "m:tournesol", "m:girasol", "向日葵|棵",
     "ひまわり|本"),
    ("dwelling_flat", "dwelling", "flat", "f:Wohnung|Wohnungen", "m:appartement", "m:piso", "公寓|套",
     "アパート|軒"),
    ("dwelling_house", "dwelling", "house", "n:Haus|Häuser", "f:maison", "f:casa", "房子|座", "家|軒"),
]


def entries() -> list[Entry]:
    return [noun(row[0] if row[0].startswith("dwelling") else f"th_{row[0]}", "thing " + row[1], *row[2:])
            for row in THINGS]
