"""`when: language: [...]`: is a text Indonesian/Javanese, or in another language?

Cheap and robust enough for routing: count the text's tokens that are common function words of
English (and of German, Dutch, French, Spanish) and those that are common Indonesian/Javanese
function words. A text is `other` when it has at least `MIN_FOREIGN` foreign function words and
they outnumber the Indonesian/Javanese ones `RATIO` to one, or when most of its letters are not
Latin (Arabic, Chinese, Cyrillic...).
Everything else, short texts included, is `indonesian`: a complaint in Indonesian with a few
English words ("jalan rusak parah, please fix asap") stays `indonesian` and is routed as usual.
"""

from __future__ import annotations

from lapakd.rules.text import Words

LANGUAGES = ("indonesian", "other")
MIN_FOREIGN = 3
RATIO = 2

# Function words: frequent in any text of the language, rare as loanwords in the other.
_ENGLISH_WORDS = """
the a an and or but of to in on at for with from by about into over after before is are was were
be been being am do does did have has had will would can could should may might must shall i you
he she it we they me him her us them my your his its our their this that these those there here
what which who whom whose when where why how not yes if then than so very just also only all
any some more most other such own same too get got gets getting make made let please click now
free today offer best new
"""
# The commonest function words of German, Dutch, French and Spanish that are no Indonesian or
# Javanese word or slang (left out: "es" teh, "para" warga, "las" besi, "pas", "lo" = you,
# "y" = ya, "le" = thole, "al" of Al-Ikhlas, "den" bagus).
_EUROPEAN_WORDS = """
der das und ist nicht ich wir mit für von zu dem ein eine auf sich auch
het een niet zijn voor ook
les des et est une pour dans avec qui sur vous nous
una por con del como pero muy
"""
FOREIGN = frozenset(_ENGLISH_WORDS.split()) | frozenset(_EUROPEAN_WORDS.split())

_INDONESIAN_WORDS = """
yang dan di ke dari ini itu untuk dengan tidak tak ada adalah akan sudah telah belum sedang
masih juga saja hanya atau tapi tetapi karena kalau jika agar supaya pada dalam oleh bisa dapat
harus mau ingin saya aku kami kita kamu anda dia mereka beliau nya kok sih dong deh ya iya gak
ga nggak enggak tidak blm udah udh sdh sy yg dgn utk krn tdk jg aja lagi banyak sangat sekali
mohon tolong pak bu bapak ibu mas mbak min warga desa jalan rumah kami kula niku sing ora durung
wis wes arep karo neng ning nang kae kiye kuwe banget mbok dereng sampun nggih inggih matur
nuwun lur kang yu
"""
INDONESIAN = frozenset(_INDONESIAN_WORDS.split())


def _non_latin_share(text: str) -> float:
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for ch in letters if ord(ch) > 0x24F) / len(letters)


def language_of(w: Words) -> str:
    """"indonesian" or "other" (see the module's docstring)."""
    if not w.ascii and _non_latin_share(w.normalized) > 0.5:
        return "other"
    foreign = native = 0
    for tok in w.tokens:
        if tok in FOREIGN:
            foreign += 1
        elif tok in INDONESIAN:
            native += 1
    if foreign >= MIN_FOREIGN and foreign >= RATIO * max(native, 1):
        return "other"
    return "indonesian"
