"""The shipped rules against English spam and short Indonesian abbreviations; `language:`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lapakd.errors import RulesError
from lapakd.rules import check_examples, load_rules
from lapakd.rules.language import language_of
from lapakd.rules.text import words

SHIPPED = Path(__file__).resolve().parent.parent / "rules"


@pytest.fixture(scope="module")
def shipped():
    return load_rules(SHIPPED)


def test_shipped_examples_all_pass(shipped) -> None:
    assert check_examples(shipped) == []


# English mail that the keywords `thr*`, `add`, `got`, `tps`, `rs`, `kb`, `sd` used to send to
# an agency: SEO offers, crypto, "add me", "got a deal", phishing, sales.
ENGLISH_SPAM = [
    "Good morning! We have got an exclusive offer for your website: 1000 backlinks for $49",
    "Please add me on WhatsApp, I have a business proposal for you regarding crypto mining",
    "Got a minute? Our team can boost your Instagram followers to 10k in three days",
    "Through our partnership programme you can earn 30% commission on every sale. Join now",
    "Dear customer, your account has been locked. Please confirm your details at the link "
    "below to avoid suspension",
    "Buy TPS reports templates, SD cards and 500 KB icon packs at the lowest price in the "
    "market, order today",
    "Hello, I saw RS Group is looking for distributors. Are you interested in our products?",
    "You have won! Add your bank details to receive the prize of 50,000 USDT into your wallet",
    "Thread: what is the best way to get more traffic to a government site? Let me know",
    "Our company offers cheap flights and hotels for your staff, contact us for a quote",
]


@pytest.mark.parametrize("text", ENGLISH_SPAM)
def test_english_spam_never_reaches_an_agency(shipped, text: str) -> None:
    d = shipped.evaluate(text, channel="email", sender="promo@spam.example")
    assert d.action in ("triage", "ignore"), (d.rule, d.matched)
    assert d.agencies == []


# Complaints in Indonesian/Javanese with the abbreviations, in context: the right agency.
COMPLAINTS = [
    ("THR karyawan toko bangunan di Ajibarang belum dibayar sampai sekarang", "dinnakerkop"),
    ("Dana ADD tahap 2 di desa kami kok belum cair, perangkat desa belum gajian", "dinsospermades"),
    ("Got di depan SMP mampet, air luber ke jalan kalau hujan", "dpupr"),
    ("gotnya ambrol di pinggir jalan Desa Pageraji, bahaya buat pengendara", "dpupr"),
    ("TPS di belakang pasar Cilongok penuh, sampah sampai ke jalan dan bau", "dlh"),
    ("TPS dekat perumahan ga pernah diangkut, lalat di mana2", "dlh"),
    ("Dibawa ke RS tapi katanya kamar penuh, disuruh nunggu di lorong", "dinkes"),
    ("Pelayanan rs. Wijayakusuma lambat, pasien BPJS dinomorduakan", "dinkes"),
    ("Pagar SD Negeri 1 Pliken roboh kena angin, bahaya buat murid", "dindik"),
    ("Pungutan seragam di SD N 3 Sumbang mahal banget", "dindik"),
    ("Mau pasang KB implan gratis di mana ya, di desa ga ada kader", "dppkbp3a"),
    ("Program KB di kampung kami ga jalan, penyuluh ga pernah dateng", "dppkbp3a"),
    ("Kang, got nang ngarep omah mampet, banyune mlebu omah", "dpupr"),
    # Indonesian with a few English words stays Indonesian.
    ("Min please, jalan di depan rumah saya rusak parah, tolong di-fix asap ya", "dpupr"),
    ("Sorry min, mau report sampah numpuk di pinggir jalan, thank you", "dlh"),
]


@pytest.mark.parametrize(("text", "agency"), COMPLAINTS)
def test_abbreviations_route_in_context(shipped, text: str, agency: str) -> None:
    d = shipped.evaluate(text, channel="whatsapp")
    assert d.action == "forward" and agency in d.agencies, (d.rule, d.agencies, d.matched)


@pytest.mark.parametrize(("text", "expected"), [
    ("Jalan rusak di depan rumah, mohon diperbaiki", "indonesian"),
    ("Dalane rusak parah, wis ping telu lapor ora ana sing teka", "indonesian"),
    ("ok", "indonesian"),  # too short to say: not foreign
    ("the road in front of my house is broken, please fix it", "other"),
    ("Tolong ya min, the lampu jalan is mati", "indonesian"),  # a few words: still ours
    ("Sehr geehrte Damen und Herren, ich möchte eine Beschwerde einreichen", "other"),
    ("Bonjour, nous avons une offre spéciale pour vous et votre entreprise", "other"),
    ("مرحبا، أريد تقديم شكوى بخصوص الطريق", "other"),
    ("您好，我想投诉道路问题", "other"),
])
def test_language_of(text: str, expected: str) -> None:
    assert language_of(words(text)) == expected


def write(tmp_path: Path, rules: str) -> Path:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "agencies.yaml").write_text(
        "agencies:\n  dpupr: {name: Dinas PUPR, email: dpupr@banyumas.example}\n",
        encoding="utf-8")
    (d / "10-x.yaml").write_text(textwrap.dedent(rules), encoding="utf-8")
    return d


def test_language_condition_alone_and_with_words(tmp_path: Path) -> None:
    rs = load_rules(write(tmp_path, """\
        rules:
          - name: asing
            when: {language: other}
            triage: true
          - name: jalan
            when: {any: [jalan, road], language: [indonesian]}
            forward: dpupr
        """))
    d = rs.evaluate("The road to the village is full of holes and nobody has fixed it")
    assert (d.action, d.rule, d.matched) == ("triage", "asing", ["language:other"])
    d = rs.evaluate("Jalan ke desa berlubang semua")
    assert (d.rule, d.agencies) == ("jalan", ["dpupr"])
    assert rs.rules[1].match(words("road rusak di desa"), None, None) == [
        "language:indonesian", "road"]


def test_unknown_language_is_a_rules_problem(tmp_path: Path) -> None:
    with pytest.raises(RulesError) as err:
        load_rules(write(tmp_path, """\
            rules:
              - name: asing
                when: {language: [english]}
                triage: true
            """), display_root=tmp_path)
    assert err.value.problems == [
        "rules/10-x.yaml:3: unknown language 'english' (one of indonesian, other)"]
