"""Places (with the prepositions each language uses for "in/at" and "to"), cities and spots in a room.

Place specs: en ``"in the kitchen"`` (or ``"at school|to school"`` when "to" is irregular); de
``"g:Noun:loc-prep[>dir-prep]"`` (``"m:Bahnhof:an>zu"`` gives *am Bahnhof* / *zum Bahnhof*); fr
``"g:noun:prep[|locative]"``; es ``"g:noun[|locative]"``; zh ``"noun[|noun after 在]"``; ja noun.
"""

from __future__ import annotations

from langneuron_eval.demo_corpus.entries import LANGS, Entry, phrase, tagset

# id, tags (which frames may use the place), en, de, fr, es, zh, ja
PLACES = [
    ("kitchen", "home eat drink breakfast study sleep", "in the kitchen", "f:Küche:in", "f:cuisine:dans",
     "f:cocina", "厨房|厨房里", "台所"),
    ("garden", "home eat drink breakfast read study sleep plant see", "in the garden", "m:Garten:in",
     "m:jardin:dans", "m:jardín", "花园|花园里", "庭"),
    ("living_room", "home eat drink breakfast read study sleep", "in the living room", "n:Wohnzimmer:in",
     "m:salon:dans", "m:salón", "客厅|客厅里", "居間"),
    ("balcony", "home eat drink breakfast read sleep plant", "on the balcony", "m:Balkon:auf", "m:balcon:sur",
     "m:balcón", "阳台|阳台上", "ベランダ"),
    ("bedroom", "home read study sleep", "in the bedroom", "n:Schlafzimmer:in", "f:chambre:dans",
     "m:dormitorio", "卧室|卧室里", "寝室"),
    ("hallway", "home sleep", "in the hallway", "m:Flur:in", "m:couloir:dans", "m:pasillo", "走廊|走廊里", "廊下"),
    ("park", "eat read meet outing landmark direction see feed wp", "in the park", "m:Park:in", "m:parc:à",
     "m:parque", "公园|公园里", "公園"),
    ("station", "meet landmark direction commute", "at the station", "m:Bahnhof:an>zu", "f:gare:à",
     "f:estación", "火车站", "駅"),
    ("library", "read study meet landmark direction commute wp", "in the library", "f:Bibliothek:in",
     "f:bibliothèque:à", "f:biblioteca", "图书馆|图书馆里", "図書館"),
    ("school", "eat landmark commute wp", "at school|to school", "f:Schule:in>zu", "f:école:à", "f:escuela",
     "学校|学校里", "学校"),
    ("work", "commute", "at work|to work", "f:Arbeit:auf>zu", "m:travail:à", "m:trabajo", "公司", "会社"),
    ("office", "eat drink", "in the office", "n:Büro:in", "m:bureau:à", "f:oficina", "办公室|办公室里",
     "オフィス"),
    ("supermarket", "shop landmark direction commute wp", "at the supermarket", "m:Supermarkt:in",
     "m:supermarché:à", "m:supermercado", "超市|超市里", "スーパー"),
    ("bakery", "landmark direction commute wp", "at the bakery", "f:Bäckerei:in>zu", "f:boulangerie:à",
     "f:panadería", "面包店|面包店里", "パン屋"),
    ("market", "shop meet landmark commute", "at the market", "m:Markt:auf", "m:marché:à", "m:mercado", "市场",
     "市場"),
    ("beach", "outing", "on the beach|to the beach", "m:Strand:an", "f:plage:à", "f:playa", "海滩|海滩上", "浜辺"),
    ("museum", "meet landmark direction", "at the museum", "n:Museum:in", "m:musée:à", "m:museo",
     "博物馆|博物馆里", "博物館"),
    ("cinema", "meet landmark direction", "at the cinema", "n:Kino:in", "m:cinéma:à", "m:cine", "电影院",
     "映画館"),
    ("hospital", "landmark direction wp", "at the hospital", "n:Krankenhaus:in", "m:hôpital:à", "m:hospital",
     "医院", "病院"),
    ("restaurant", "meet direction eatout wp", "at the restaurant", "n:Restaurant:in", "m:restaurant:à",
     "m:restaurante", "餐厅|餐厅里", "レストラン"),
    ("cafe", "eat drink breakfast read study meet direction eatout wp", "at the café", "n:Café:in", "m:café:à",
     "f:cafetería", "咖啡馆|咖啡馆里", "喫茶店"),
    ("zoo", "outing see", "at the zoo", "m:Zoo:in", "m:zoo:à", "m:zoo", "动物园|动物园里", "動物園"),
    ("airport", "wp", "at the airport", "m:Flughafen:an>zu", "m:aéroport:à", "m:aeropuerto", "机场", "空港"),
    ("post_office", "landmark direction", "at the post office", "f:Post:auf>zu", "f:poste:à",
     "f:oficina de correos", "邮局", "郵便局"),
    ("bank", "direction wp", "at the bank", "f:Bank:in>zu", "f:banque:à", "m:banco", "银行", "銀行"),
    ("pharmacy", "landmark direction wp", "at the pharmacy", "f:Apotheke:in>zu", "f:pharmacie:à", "f:farmacia",
     "药店", "薬局"),
    ("hotel", "direction eatout wp", "at the hotel", "n:Hotel:in", "m:hôtel:à", "m:hotel", "酒店|酒店里",
     "ホテル"),
    ("swimming_pool", "meet outing direction commute", "at the swimming pool", "n:Schwimmbad:in",
     "f:piscine:à", "f:piscina", "游泳池", "プール"),
    ("stadium", "landmark", "at the stadium", "n:Stadion:in", "m:stade:à", "m:estadio", "体育场", "スタジアム"),
    ("forest", "outing see", "in the forest", "m:Wald:in", "f:forêt:dans", "m:bosque", "森林|森林里", "森"),
    ("lake", "outing see feed", "at the lake|to the lake", "m:See:an", "m:lac:à|au bord du lac", "m:lago",
     "湖边", "湖"),
    ("river", "outing", "by the river|to the river", "m:Fluss:an", "f:rivière:à|au bord de la rivière",
     "m:río|junto al río", "河边", "川"),
    ("pond", "see feed", "at the pond", "m:Teich:an", "m:étang:à|au bord de l'étang",
     "m:estanque|junto al estanque", "池塘边", "池"),
    ("farm", "outing see feed", "on the farm|to the farm", "m:Bauernhof:auf", "f:ferme:à", "f:granja",
     "农场|农场里", "農場"),
    ("bookshop", "direction wp", "at the bookshop", "f:Buchhandlung:in>zu", "f:librairie:à", "f:librería",
     "书店|书店里", "本屋"),
    ("factory", "wp", "at the factory", "f:Fabrik:in", "f:usine:à", "f:fábrica", "工厂|工厂里", "工場"),
    ("garage", "wp", "at the garage", "f:Autowerkstatt:in", "m:garage:à", "m:taller", "修车厂", "整備工場"),
    ("police_station", "direction wp", "at the police station", "f:Polizeiwache:auf>zu", "m:commissariat:à",
     "f:comisaría", "警察局", "警察署"),
    ("animal_clinic", "wp", "at the animal clinic", "f:Tierklinik:in", "f:clinique vétérinaire:à",
     "f:clínica veterinaria", "动物医院", "動物病院"),
    ("city_centre", "meet commute", "in the city centre|to the city centre", "f:Innenstadt:in",
     "m:centre-ville:à", "m:centro", "市中心", "街の中心部"),
    ("university", "landmark commute", "at the university|to the university", "f:Universität:an>zu",
     "f:université:à", "f:universidad", "大学|大学里", "大学"),
    ("harbour", "outing landmark", "at the harbour|to the harbour", "m:Hafen:an>zu", "m:port:à", "m:puerto",
     "港口", "港"),
    ("church", "landmark", "at the church", "f:Kirche:in", "f:église:à", "f:iglesia", "教堂", "教会"),
]

# id, tags, en, de, fr, es, zh, ja
CITIES = [
    ("berlin", "", "Berlin", "Berlin", "Berlin", "Berlín", "柏林", "ベルリン"),
    ("paris", "", "Paris", "Paris", "Paris", "París", "巴黎", "パリ"),
    ("madrid", "", "Madrid", "Madrid", "Madrid", "Madrid", "马德里", "マドリード"),
    ("tokyo", "port", "Tokyo", "Tokio", "Tokyo", "Tokio", "东京", "東京"),
    ("beijing", "", "Beijing", "Peking", "Pékin", "Pekín", "北京", "北京"),
    ("london", "", "London", "London", "Londres", "Londres", "伦敦", "ロンドン"),
    ("rome", "", "Rome", "Rom", "Rome", "Roma", "罗马", "ローマ"),
    ("vienna", "", "Vienna", "Wien", "Vienne", "Viena", "维也纳", "ウィーン"),
    ("lisbon", "port", "Lisbon", "Lissabon", "Lisbonne", "Lisboa", "里斯本", "リスボン"),
    ("kyoto", "", "Kyoto", "Kyoto", "Kyoto", "Kioto", "京都", "京都"),
    ("shanghai", "port", "Shanghai", "Shanghai", "Shanghai", "Shanghái", "上海", "上海"),
    ("barcelona", "port", "Barcelona", "Barcelona", "Barcelone", "Barcelona", "巴塞罗那", "バルセロナ"),
    ("munich", "", "Munich", "München", "Munich", "Múnich", "慕尼黑", "ミュンヘン"),
    ("lyon", "", "Lyon", "Lyon", "Lyon", "Lyon", "里昂", "リヨン"),
    ("osaka", "port", "Osaka", "Osaka", "Osaka", "Osaka", "大阪", "大阪"),
    ("seville", "", "Seville", "Sevilla", "Séville", "Sevilla", "塞维利亚", "セビリア"),
    ("hamburg", "port", "Hamburg", "Hamburg", "Hambourg", "Hamburgo", "汉堡", "ハンブルク"),
    ("marseille", "port", "Marseille", "Marseille", "Marseille", "Marsella", "马赛", "マルセイユ"),
    ("prague", "", "Prague", "Prag", "Prague", "Praga", "布拉格", "プラハ"),
    ("amsterdam", "port", "Amsterdam", "Amsterdam", "Amsterdam", "Ámsterdam", "阿姆斯特丹", "アムステルダム"),
    ("athens", "port", "Athens", "Athen", "Athènes", "Atenas", "雅典", "アテネ"),
]

# Spots in a flat where an object can lie: id, en, de, fr, es, zh, ja
SPOTS = [
    ("table", "on the table", "auf dem Tisch", "sur la table", "en la mesa", "桌子上", "テーブルの上"),
    ("chair", "on the chair", "auf dem Stuhl", "sur la chaise", "en la silla", "椅子上", "椅子の上"),
    ("shelf", "on the shelf", "im Regal", "sur l'étagère", "en la estantería", "书架上", "棚の上"),
    ("door", "next to the door", "neben der Tür", "à côté de la porte", "junto a la puerta", "门旁边",
     "ドアの横"),
    ("bed", "under the bed", "unter dem Bett", "sous le lit", "debajo de la cama", "床底下", "ベッドの下"),
    ("sofa", "on the sofa", "auf dem Sofa", "sur le canapé", "en el sofá", "沙发上", "ソファの上"),
    ("hall", "in the hallway", "im Flur", "dans le couloir", "en el pasillo", "走廊里", "廊下"),
    ("window", "on the windowsill", "auf der Fensterbank", "sur le rebord de la fenêtre", "en el alféizar",
     "窗台上", "窓際"),
]


def _place(pid: str, tags: str, en: str, de: str, fr: str, es: str, zh: str, ja: str) -> Entry:
    en_loc, _, en_dir = en.partition("|")
    head = en_loc.split(" ", 1)[1].removeprefix("the ")
    de_g, de_n, de_p = de.split(":")
    de_loc, _, de_dir = de_p.partition(">")
    fr_g, fr_n, fr_rest = fr.split(":")
    fr_p, _, fr_loc = fr_rest.partition("|")
    es_g, _, es_rest = es.partition(":")
    es_n, _, es_loc = es_rest.partition("|")
    zh_n, _, zh_loc = zh.partition("|")
    forms = {
        "en": {"loc": en_loc, "dir": en_dir or f"to the {head}", "": head},
        "de": {"g": de_g, "": de_n, "lp": de_loc, "dp": de_dir or de_loc},
        "fr": {"g": fr_g, "": fr_n, "p": fr_p, "loc": fr_loc},
        "es": {"g": es_g, "": es_n, "loc": es_loc},
        "zh": {"": zh_n, "loc": zh_loc or zh_n},
        "ja": {"": ja},
    }
    return Entry(f"pl_{pid}", "place", tagset("place " + tags), forms)


def entries() -> list[Entry]:
    out = [_place(*row) for row in PLACES]
    for cid, tags, *names in CITIES:
        forms = {lang: {"": name} for lang, name in zip(LANGS, names)}
        out.append(Entry(f"city_{cid}", "city", tagset("city " + tags), forms))
    for sid, en, de, fr, es, zh, ja in SPOTS:
        out.append(phrase(f"spot_{sid}", "spot", en=en, de=de, fr=fr, es=es, zh=zh, ja=ja))
    return out
