"""The "no direct identifiers" rule: column headers that name patient-identifying data.

Subject ids are study pseudonyms; a delivery must not carry a patient's name (or its kana
reading), initials, date of birth, phone number, e-mail or postal address, or national id, in
any language the SMOs use. AGE is not an identifier; SDTM's BRTHDTC is.

How a header is classified:

1. It is normalised (`normalise_header`): Unicode NFKC (full-width and half-width forms fold,
   `ＤＯＢ` -> `DOB`, `ﾌﾘｶﾞﾅ` -> `フリガナ`), camelCase and letter/digit boundaries split
   (`patientName`, `DateOfBirth`, `担当CRC氏名`), case-folded, accents stripped from Latin letters only (kana
   keep their voicing marks), `ł ø æ œ ß` folded, every separator made a space, dotted
   acronyms joined (`D.O.B.` -> `dob`) and small connecting words dropped (`of`, `de`, `du`,
   `der`, ...), so `Fecha de nacimiento` and `fecha_nacimiento` are one case.
2. Headers that name a site, an organisation or site staff (`Site phone`, `Investigator
   e-mail`, `責任医師氏名`) are not patient identifiers, unless they also name the patient.
3. The terms below are looked up, per kind and language. A term is
   - `first name`: these words, next to each other;
   - `=name`: the whole header, once words naming the patient and number words are removed
     (`Name`, `Patient name`, `Nombre del paciente` are names; `Site name`, `Visit name` not);
   - `~telefon`: part of a word (compounds: `Mobiltelefon`, `Patientennachname`);
   - a term in Han, kana or hangul: part of the header with spaces removed (`=` still means
     the whole header).

Investigator, coordinator and other site-staff names are not patient identifiers (the roster's
`principal_investigator` is a canonical column), so `Investigator name` passes.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

# -- normalisation ----------------------------------------------------------------------------

#: Connecting words dropped from headers and terms alike ("date of birth" = "birth date").
STOPWORDS = frozenset((
    "of", "the", "and", "s",  # en ("patient's" -> "patient s")
    "de", "del", "la", "el", "los", "las", "y",  # es
    "da", "do", "dos", "das",  # pt
    "du", "des", "le", "les", "l", "d", "et",  # fr
    "der", "die", "den", "dem", "und", "von", "vom", "zu", "zur",  # de
    "di", "della", "dello", "dei", "degli", "delle", "il",  # it
    "van", "het", "en",  # nl
    "och", "av", "for", "og", "af", "ja",  # sv, no, da, fi
    "i", "w", "z", "ze",  # pl
))  # fmt: skip

_LATIN_FOLD = str.maketrans(
    {"ł": "l", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "þ": "th", "ı": "i"}
)


def _is_latin_letter(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("\u00c0" <= ch <= "\u024f") or ("\u1e00" <= ch <= "\u1eff")


def _is_cjk(ch: str) -> bool:
    """Han, kana and hangul: scripts matched without word boundaries."""
    code = ord(ch)
    return (
        0x3040 <= code <= 0x30FF  # hiragana, katakana
        or 0x31F0 <= code <= 0x31FF  # katakana extensions
        or 0x3400 <= code <= 0x4DBF  # Han extension A
        or 0x4E00 <= code <= 0x9FFF  # Han
        or 0xF900 <= code <= 0xFAFF  # Han compatibility
        or 0xAC00 <= code <= 0xD7AF  # hangul syllables
        or 0x1100 <= code <= 0x11FF  # hangul jamo
        or 0x3130 <= code <= 0x318F  # hangul compatibility jamo
    )


def _split_words(text: str) -> str:
    """camelCase, ACRONYMWord, letter/digit and Latin/CJK boundaries become spaces."""
    out: list[str] = []
    for i, ch in enumerate(text):
        if i:
            prev = text[i - 1]
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if (
                (prev.islower() and ch.isupper())
                or (prev.isupper() and ch.isupper() and nxt.islower())
                or (prev.isalpha() and ch.isdigit())
                or (prev.isdigit() and ch.isalpha())
                or (prev.isalnum() and ch.isalnum() and _is_cjk(prev) != _is_cjk(ch))
            ):
                out.append(" ")
        out.append(ch)
    return "".join(out)


def _strip_latin_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    out: list[str] = []
    base = ""
    for ch in decomposed:
        if unicodedata.combining(ch):
            if _is_latin_letter(base):
                continue  # an accent on a Latin letter; kana voicing marks stay
        else:
            base = ch
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def _join_letter_runs(tokens: list[str]) -> list[str]:
    """Dotted acronyms: `d o b` -> `dob`, `c p` -> `cp` (two or more one-letter words)."""
    out: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and token.isalpha() and _is_latin_letter(token):
            run.append(token)
            continue
        if len(run) >= 2:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if token:
            out.append(token)
    return out


@functools.lru_cache(maxsize=8192)
def normalise_header(header: str) -> str:
    """The header as the matcher sees it: words separated by single spaces (see module doc)."""
    text = unicodedata.normalize("NFKC", header)
    text = _split_words(text).casefold()
    text = _strip_latin_accents(text).translate(_LATIN_FOLD)
    text = "".join(
        ch if unicodedata.category(ch)[0] in "LNM" else " "
        for ch in text  # letters, digits, marks
    )
    tokens = _join_letter_runs(text.split())
    return " ".join(t for t in tokens if t not in STOPWORDS)


# -- the terms, per kind and language ---------------------------------------------------------

Terms = dict[str, tuple[str, ...]]

#: Words naming the patient. They never make a header an identifier by themselves; they mark a
#: header as being about the patient (even next to a site word), and are ignored by `=` terms.
PATIENT_WORDS: Terms = {
    "en": ("patient", "patients", "subject", "subj", "participant", "pat"),
    "es": ("paciente", "sujeto", "participante"),
    "pt": ("paciente", "participante", "sujeito", "doente", "utente"),
    "fr": ("patient", "patiente", "sujet", "participant"),
    "de": ("patient", "patientin", "patienten", "proband", "probandin", "teilnehmer"),
    "it": ("paziente", "soggetto", "partecipante"),
    "nl": ("patient", "deelnemer", "proefpersoon"),
    "sv": ("patient", "patientens", "deltagare", "forsoksperson"),
    "no": ("pasient", "pasientens", "deltaker", "forsoksperson"),
    "da": ("patient", "patientens", "deltager", "forsogsperson"),
    "fi": ("potilas", "potilaan", "tutkittava", "tutkittavan", "koehenkilo"),
    "pl": ("pacjent", "pacjenta", "uczestnik", "uczestnika"),
    "ja": ("患者", "被験者", "対象者", "参加者"),
    "zh": ("患者", "受试者", "受試者", "病人", "参与者"),
    "ko": ("환자", "대상자", "피험자", "참여자"),
}

#: Words naming a site, an organisation or site staff: their phone, address or name is not a
#: patient's (unless the header also names the patient).
SITE_WORDS: Terms = {
    "en": (
        "site", "sites", "centre", "center", "institution", "hospital", "clinic",
        "investigator", "investigators", "subinvestigator", "pi", "coordinator", "crc", "cra",
        "monitor", "staff", "sponsor", "smo", "cro", "vendor", "doctor", "physician", "nurse",
        "pharmacy", "pharmacist", "laboratory", "lab", "irb", "committee", "study", "user",
        "company", "organisation", "organization",
    ),
    "es": (
        "centro", "sitio", "clinica", "investigador", "investigadora", "coordinador",
        "coordinadora", "promotor", "estudio", "medico", "enfermera", "usuario",
    ),
    "pt": (
        "centro", "clinica", "investigador", "coordenador", "patrocinador", "estudo",
        "medico", "enfermeiro", "usuario", "utilizador",
    ),
    "fr": (
        "centre", "site", "hopital", "clinique", "investigateur", "investigatrice",
        "coordinateur", "promoteur", "etude", "medecin", "infirmier", "utilisateur",
    ),
    "de": (
        "~zentrum", "~klinik", "krankenhaus", "~prufer", "~prufarzt", "arzt", "arztin",
        "koordinator", "studie", "benutzer",
    ),
    "it": (
        "centro", "ospedale", "clinica", "sperimentatore", "coordinatore", "promotore",
        "studio", "medico", "infermiere", "utente",
    ),
    "nl": ("~centrum", "~ziekenhuis", "kliniek", "onderzoeker", "studie", "arts", "gebruiker"),
    "sv": ("center", "centrum", "sjukhus", "klinik", "provare", "studie", "lakare", "anvandare"),
    "no": ("senter", "sykehus", "klinikk", "utprover", "studie", "lege", "bruker"),
    "da": ("center", "hospital", "klinik", "afprover", "studie", "laege", "bruger"),
    "fi": ("~keskus", "~sairaala", "klinikka", "tutkija", "tutkimus", "laakari", "kayttaja"),
    "pl": (
        "osrodek", "osrodka", "szpital", "klinika", "badacz", "koordynator", "badanie",
        "badania", "lekarz", "uzytkownik", "placowka",
    ),
    "ja": ("施設", "医療機関", "病院", "医師", "担当者", "モニター", "依頼者"),
    "zh": ("中心", "机构", "機構", "医院", "醫院", "研究者", "医生", "医师", "醫師", "协调员", "监查员", "申办方"),
    "ko": ("기관", "병원", "연구자", "책임자", "의사", "코디네이터", "모니터", "의뢰자"),
}  # fmt: skip

#: Words ignored, besides the patient words, when a `=` term compares the whole header.
NUMBER_WORDS = ("number", "no", "nr", "num", "numero", "nummer", "numer", "id", "code", "codigo")
NUMBER_WORDS_CJK = ("番号", "号码", "號碼", "번호")

#: kind -> language -> terms (syntax in the module docstring). Kinds are tried in this order.
IDENTIFIER_TERMS: dict[str, Terms] = {
    "date of birth": {
        "en": (
            "date birth", "birth date", "birthdate", "dob", "birthday", "=birth", "=born",
            "birth dt",
        ),
        "sdtm": ("brthdtc", "brthdt", "brthdtm"),
        "es": ("fecha nacimiento", "f nacimiento", "fec nac", "fecha nac", "fnac", "=nacimiento"),
        "pt": ("data nascimento", "dt nascimento", "data nasc", "=nascimento"),
        "fr": ("date naissance", "=naissance", "ddn", "date naiss"),
        "de": ("~geburtsdatum", "geb datum", "geb dat", "geburtstag", "=geburt"),
        "it": ("data nascita", "dt nascita", "=nascita"),
        "nl": ("~geboortedatum", "=geboorte", "geb datum"),
        "sv": ("~fodelsedatum", "fodelsedag"),
        "no": ("~fodselsdato", "fodselsdag"),
        "da": ("~fodselsdato", "fodselsdag"),
        "fi": ("~syntymaaika", "~syntymapaiva", "=syntynyt"),
        "pl": ("data urodzenia", "dt urodzenia", "data ur", "=urodzenia"),
        "ja": ("生年月日", "誕生日", "出生日"),
        "zh": ("出生日期", "出生年月", "出生日", "=生日", "=生辰"),
        "ko": ("생년월일", "생일", "출생일"),
    },
    "initials": {
        "en": ("initials", "pt init", "pat init", "subj init", "patient init", "subject init"),
        "es": ("iniciales",),
        "pt": ("iniciais",),
        "fr": ("initiales",),
        "de": ("initialen",),
        "it": ("iniziali",),
        "nl": ("initialen", "voorletters"),
        "sv": ("initialer",),
        "no": ("initialer",),
        "da": ("initialer",),
        "fi": ("nimikirjaimet",),
        "pl": ("inicjaly",),
        "ja": ("イニシャル", "頭文字"),
        "zh": ("姓名缩写", "名字缩写", "首字母", "姓名縮寫"),
        "ko": ("이니셜", "머리글자"),
    },
    "national id": {
        "en": (
            "ssn", "social security", "national id", "national identification",
            "national identity", "national insurance", "ni number", "nhs number", "nhs no",
            "passport", "driver licence", "driver license", "drivers license",
            "driving licence", "medicare number", "id card",
        ),
        "es": (
            "=dni", "dni nie", "=nif", "documento identidad", "curp", "=rut", "cedula",
            "seguridad social", "=nss", "tarjeta sanitaria", "pasaporte",
        ),
        "pt": (
            "cpf", "=rg", "cartao cidadao", "numero utente", "=cns", "passaporte",
            "bilhete identidade", "documento identidade",
        ),
        "fr": ("=nir", "securite sociale", "insee", "carte vitale", "passeport", "=cni",
               "carte identite"),
        "de": (
            "~personalausweis", "~ausweisnummer", "~sozialversicherungsnummer",
            "~versichertennummer", "steuer id", "~steueridentifikationsnummer", "~reisepass",
            "=ahv", "=svnr",
        ),
        "it": ("codice fiscale", "tessera sanitaria", "carta identita", "passaporto"),
        "nl": ("=bsn", "~burgerservicenummer", "paspoort", "sofinummer", "identiteitskaart"),
        "sv": ("~personnummer", "samordningsnummer", "passnummer"),
        "no": ("~fodselsnummer", "~personnummer", "passnummer"),
        "da": ("=cpr", "cpr nummer", "cprnummer", "~personnummer", "pasnummer"),
        "fi": ("~henkilotunnus", "=hetu", "~sosiaaliturvatunnus", "passinumero"),
        "pl": ("pesel", "=nip", "dowod osobisty", "dowodu osobistego", "~paszport"),
        "ja": ("マイナンバー", "個人番号", "被保険者番号", "保険者番号", "保険証", "旅券番号",
               "パスポート", "運転免許"),
        "zh": ("身份证", "身份證", "身分證", "证件号", "證件號", "护照", "護照", "社保号",
               "社会保障号", "医保卡号"),
        "ko": ("주민등록번호", "주민번호", "외국인등록번호", "여권", "운전면허"),
    },
    "e-mail": {
        "en": ("email", "e mail", "mail", "email address"),
        "es": ("correo", "correo electronico"),
        "pt": ("correio eletronico", "correio electronico"),
        "fr": ("courriel", "=mel", "adresse electronique"),
        "de": ("~mailadresse",),
        "it": ("posta elettronica",),
        "nl": ("~mailadres",),
        "sv": ("e post", "epost", "e postadress", "epostadress"),
        "no": ("e post", "epost", "e postadresse", "epostadresse"),
        "da": ("~mailadresse",),
        "fi": ("~sahkoposti",),
        "pl": ("poczta elektroniczna", "adres email"),
        "ja": ("メール",),
        "zh": ("电子邮件", "邮箱", "电邮", "電子郵件", "郵箱", "電郵"),
        "ko": ("이메일", "전자우편", "메일"),
    },
    "phone": {
        "en": (
            "phone", "telephone", "tel", "cellphone", "cell phone", "cell number", "=cell",
            "mobile phone", "mobile number", "mobile no", "=mobile", "fax", "contact number",
        ),
        "es": ("telefono", "tfno", "tlf", "tlfno", "movil", "celular"),
        "pt": ("telefone", "telemovel", "celular"),
        "fr": ("telephone", "portable", "numero portable"),
        "de": ("~telefon", "handy", "~handynummer", "~mobilnummer", "~rufnummer", "~mobilfunk"),
        "it": ("telefono", "cellulare", "recapito telefonico"),
        "nl": ("~telefoon", "mobiel", "gsm"),
        "sv": ("~telefon", "mobil", "~mobilnummer", "tfn"),
        "no": ("~telefon", "mobil", "~mobilnummer"),
        "da": ("~telefon", "mobil", "~mobilnummer"),
        "fi": ("~puhelin", "kannykka"),
        "pl": ("~telefon", "komorka", "komorkowy"),
        "ja": ("電話", "携帯"),
        "zh": ("电话", "手机", "電話", "手機", "联系方式", "聯繫方式"),
        "ko": ("전화", "휴대폰", "핸드폰", "연락처"),
    },
    "address": {
        "en": (
            "address", "street", "zip", "zip code", "zipcode", "postcode", "postal code",
            "house number",
        ),
        "es": ("direccion", "domicilio", "calle", "codigo postal", "=cp"),
        "pt": ("endereco", "morada", "=rua", "codigo postal", "=cep"),
        "fr": ("~adresse", "=rue", "code postal", "domicile"),
        "de": ("~adresse", "~anschrift", "~strasse", "~postleitzahl", "=plz", "hausnummer"),
        "it": ("indirizzo", "domicilio", "residenza", "codice postale", "=cap", "=via"),
        "nl": ("adres", "woonadres", "huisadres", "postadres", "~straat", "postcode", "huisnummer"),
        "sv": ("~adress", "postnummer"),
        "no": ("~adresse", "postnummer"),
        "da": ("~adresse", "postnummer", "vejnavn"),
        "fi": ("~osoite", "postinumero"),
        "pl": ("adres", "ulica", "kod pocztowy", "miejsce zamieszkania"),
        "ja": ("住所", "郵便番号", "番地"),
        "zh": ("地址", "住址", "邮编", "邮政编码", "住所", "郵遞區號"),
        "ko": ("주소", "우편번호", "거주지"),
    },
    "patient name": {
        "en": (
            "first name", "last name", "surname", "given name", "given names", "family name",
            "full name", "maiden name", "middle name", "forename", "forenames",
            "christian name", "firstname", "lastname", "fullname", "givenname", "familyname",
            "=name", "=names", "=fname", "=lname",
        ),
        "es": ("=nombre", "=nombres", "nombre completo", "apellido", "apellidos", "nombre pila"),
        "pt": ("=nome", "nome completo", "sobrenome", "apelido", "primeiro nome", "ultimo nome"),
        "fr": ("=nom", "nom famille", "prenom", "prenoms", "nom complet", "nom naissance",
               "nom usage"),
        "de": ("~vorname", "~nachname", "~familienname", "geburtsname", "vollstandiger name"),
        "it": ("=nome", "cognome", "nome completo"),
        "nl": ("=naam", "~voornaam", "~achternaam", "volledige naam", "familienaam", "roepnaam"),
        "sv": ("=namn", "~fornamn", "~efternamn", "fullstandigt namn"),
        "no": ("=navn", "~fornavn", "~etternavn", "fullt navn"),
        "da": ("=navn", "~fornavn", "~efternavn", "fulde navn"),
        "fi": ("=nimi", "=nimet", "~etunimi", "~sukunimi", "koko nimi"),
        "pl": ("=imie", "imiona", "nazwisko", "nazwiska", "imie nazwisko"),
        "ja": ("氏名", "姓名", "名前", "患者名", "被験者名", "対象者名", "フリガナ", "ふりがな",
               "カナ氏名", "=カナ", "=セイ", "=メイ", "=姓", "=名"),
        "zh": ("姓名", "名字", "全名", "=姓", "=名"),
        "ko": ("=이름", "성명", "환자명", "피험자명", "성함", "=성"),
    },
}  # fmt: skip


# -- matching ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    kind: str
    language: str
    text: str  # as written in the table
    mode: str  # phrase | whole | part | cjk | cjk_whole
    words: tuple[str, ...]


def _compile(kind: str, language: str, text: str) -> _Term:
    marker = text[0] if text[0] in "=~" else ""
    body = normalise_header(text[1:] if marker else text)
    if not body:
        raise ValueError(f"identifier term {text!r} ({language}) normalises to nothing")
    if any(_is_cjk(ch) for ch in body):
        mode = "cjk_whole" if marker == "=" else "cjk"
        return _Term(kind, language, text, mode, (body.replace(" ", ""),))
    mode = {"=": "whole", "~": "part", "": "phrase"}[marker]
    words = tuple(body.split())
    if mode == "part" and len(words) != 1:
        raise ValueError(f"part-of-word term {text!r} must be one word")
    return _Term(kind, language, text, mode, words)


def _compile_all(table: Terms, kind: str = "") -> tuple[_Term, ...]:
    return tuple(_compile(kind, lang, t) for lang, terms in table.items() for t in terms)


_PATIENT = _compile_all(PATIENT_WORDS)
_SITE = _compile_all(SITE_WORDS)
_KINDS = tuple((kind, _compile_all(table, kind)) for kind, table in IDENTIFIER_TERMS.items())
_PATIENT_TOKENS = frozenset(t.words[0] for t in _PATIENT if t.mode == "phrase")
_PATIENT_CJK = tuple(t.words[0] for t in _PATIENT if t.mode == "cjk")
_FILLER_TOKENS = _PATIENT_TOKENS | frozenset(NUMBER_WORDS)


@dataclass(frozen=True)
class _Header:
    tokens: tuple[str, ...]
    compact: str  # no spaces: for Han, kana and hangul terms
    core: tuple[str, ...]  # tokens minus patient and number words (for `=` terms)
    core_compact: str


def _prepare(header: str) -> _Header:
    tokens = tuple(normalise_header(header).split())
    compact = "".join(tokens)
    core = tuple(t for t in tokens if t not in _FILLER_TOKENS and not t.isdigit())
    core_compact = "".join(core)
    for word in (*_PATIENT_CJK, *NUMBER_WORDS_CJK):
        core_compact = core_compact.replace(word, "")
    return _Header(tokens, compact, core, core_compact)


def _matches(term: _Term, header: _Header) -> bool:
    if term.mode == "phrase":
        n = len(term.words)
        return any(
            header.tokens[i : i + n] == term.words for i in range(len(header.tokens) - n + 1)
        )
    if term.mode == "whole":
        return header.core == term.words
    if term.mode == "part":
        return any(term.words[0] in token for token in header.tokens)
    if term.mode == "cjk":
        return term.words[0] in header.compact
    return header.core_compact == term.words[0]  # cjk_whole


def matching_terms(header: str) -> list[tuple[str, str, str]]:
    """Every (kind, language, term) that matches the header, ignoring site words (for tests
    and for explaining a verdict)."""
    prepared = _prepare(header)
    return [
        (term.kind, term.language, term.text)
        for _, terms in _KINDS
        for term in terms
        if _matches(term, prepared)
    ]


@functools.lru_cache(maxsize=8192)
def direct_identifier_kind(header: str) -> str | None:
    """What patient identifier a header names (e.g. "date of birth"), or None."""
    prepared = _prepare(header)
    if not prepared.tokens:
        return None
    about_patient = any(_matches(t, prepared) for t in _PATIENT)
    if not about_patient and any(_matches(t, prepared) for t in _SITE):
        return None
    for kind, terms in _KINDS:
        if any(_matches(t, prepared) for t in terms):
            return kind
    return None
