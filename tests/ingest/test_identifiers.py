"""The direct-identifier header matcher: what it must catch, in every language, and what it
must leave alone (every header the generator writes, every canonical column, SDTM, common
clinical headers)."""

from __future__ import annotations

import pytest

from expectations.feeds import FEEDS
from expectations.identifiers import (
    IDENTIFIER_TERMS,
    direct_identifier_kind,
    normalise_header,
)
from synthetic.dialects import DIALECTS

NAME, INITIALS, DOB = "patient name", "initials", "date of birth"
NATIONAL_ID, PHONE, EMAIL, ADDRESS = "national id", "phone", "e-mail", "address"

#: language -> (header, kind). At least five per language.
POSITIVE: dict[str, list[tuple[str, str]]] = {
    "en": [
        ("Patient Name", NAME), ("PATIENT_NAME", NAME), ("patientFirstName", NAME),
        ("Last name", NAME), ("Surname", NAME), ("Name", NAME), ("Subject's full name", NAME),
        ("Patient Initials", INITIALS), ("Pt. Init.", INITIALS),
        ("Date of Birth", DOB), ("DOB", DOB), ("D.O.B.", DOB), ("BirthDate", DOB),
        ("dateOfBirth", DOB), ("ＤＯＢ", DOB),
        ("Phone", PHONE), ("Mobile number", PHONE), ("Tel.", PHONE), ("Patient cell phone", PHONE),
        ("E-mail", EMAIL), ("Email Address", EMAIL),
        ("Home Address", ADDRESS), ("Street", ADDRESS), ("ZIP code", ADDRESS),
        ("SSN", NATIONAL_ID), ("Social Security Number", NATIONAL_ID),
        ("NHS Number", NATIONAL_ID), ("Passport No.", NATIONAL_ID),
    ],
    "sdtm": [("BRTHDTC", DOB), ("brthdtc", DOB), ("BRTHDT", DOB)],
    "es": [
        ("Nombre", NAME), ("Nombre del paciente", NAME), ("Apellidos", NAME),
        ("Nombre y apellidos", NAME), ("Primer apellido", NAME),
        ("Iniciales", INITIALS), ("Iniciales del paciente", INITIALS),
        ("Fecha de nacimiento", DOB), ("F. nacimiento", DOB), ("FECHA_NACIMIENTO", DOB),
        ("Teléfono", PHONE), ("Móvil", PHONE), ("Tfno. contacto", PHONE),
        ("Correo electrónico", EMAIL), ("Dirección", ADDRESS), ("Domicilio", ADDRESS),
        ("Código postal", ADDRESS), ("DNI", NATIONAL_ID), ("DNI paciente", NATIONAL_ID),
        ("Nº Seguridad Social", NATIONAL_ID), ("Tarjeta sanitaria", NATIONAL_ID),
    ],
    "pt": [
        ("Nome", NAME), ("Nome do paciente", NAME), ("Nome completo", NAME), ("Sobrenome", NAME),
        ("Iniciais", INITIALS), ("Data de nascimento", DOB), ("Dt. Nascimento", DOB),
        ("Telefone", PHONE), ("Telemóvel", PHONE), ("Celular", PHONE),
        ("Correio eletrónico", EMAIL), ("Endereço", ADDRESS), ("Morada", ADDRESS),
        ("CEP", ADDRESS), ("CPF", NATIONAL_ID), ("Cartão de Cidadão", NATIONAL_ID),
        ("Número de utente", NATIONAL_ID),
    ],
    "fr": [
        ("Nom", NAME), ("Nom du patient", NAME), ("Prénom", NAME), ("Nom de famille", NAME),
        ("Nom de naissance", NAME), ("Initiales", INITIALS), ("Date de naissance", DOB),
        ("DDN", DOB), ("Téléphone", PHONE), ("Portable", PHONE), ("Courriel", EMAIL),
        ("Adresse", ADDRESS), ("Code postal", ADDRESS), ("NIR", NATIONAL_ID),
        ("N° de sécurité sociale", NATIONAL_ID), ("Carte Vitale", NATIONAL_ID),
    ],
    "de": [
        ("Vorname", NAME), ("Nachname", NAME), ("Patientennachname", NAME),
        ("Familienname", NAME), ("Geburtsname", NAME), ("Initialen", INITIALS),
        ("Geburtsdatum", DOB), ("Geb.-Datum", DOB), ("Telefon", PHONE),
        ("Telefonnummer", PHONE), ("Mobiltelefon", PHONE), ("Handy", PHONE),
        ("E-Mail-Adresse", EMAIL), ("Adresse", ADDRESS), ("Straße", ADDRESS),
        ("Anschrift", ADDRESS), ("PLZ", ADDRESS), ("Postleitzahl", ADDRESS),
        ("Personalausweisnummer", NATIONAL_ID), ("Sozialversicherungsnummer", NATIONAL_ID),
        ("Krankenversichertennummer", NATIONAL_ID),
    ],
    "it": [
        ("Nome", NAME), ("Cognome", NAME), ("Nome e cognome", NAME),
        ("Nome del paziente", NAME), ("Iniziali", INITIALS), ("Data di nascita", DOB),
        ("Telefono", PHONE), ("Cellulare", PHONE), ("Posta elettronica", EMAIL),
        ("Indirizzo", ADDRESS), ("Residenza", ADDRESS), ("CAP", ADDRESS),
        ("Codice fiscale", NATIONAL_ID), ("Tessera sanitaria", NATIONAL_ID),
    ],
    "nl": [
        ("Naam", NAME), ("Voornaam", NAME), ("Achternaam", NAME), ("Naam patiënt", NAME),
        ("Voorletters", INITIALS), ("Initialen", INITIALS), ("Geboortedatum", DOB),
        ("Telefoonnummer", PHONE), ("Mobiel", PHONE), ("E-mailadres", EMAIL),
        ("Adres", ADDRESS), ("Woonadres", ADDRESS), ("Postcode", ADDRESS),
        ("BSN", NATIONAL_ID), ("Burgerservicenummer", NATIONAL_ID),
    ],
    "sv": [
        ("Namn", NAME), ("Förnamn", NAME), ("Efternamn", NAME), ("Patientens namn", NAME),
        ("Initialer", INITIALS), ("Födelsedatum", DOB), ("Telefonnummer", PHONE),
        ("Mobil", PHONE), ("E-postadress", EMAIL), ("E-post", EMAIL), ("Adress", ADDRESS),
        ("Gatuadress", ADDRESS), ("Postnummer", ADDRESS), ("Personnummer", NATIONAL_ID),
        ("Samordningsnummer", NATIONAL_ID),
    ],
    "no": [
        ("Navn", NAME), ("Fornavn", NAME), ("Etternavn", NAME), ("Pasientens navn", NAME),
        ("Initialer", INITIALS), ("Fødselsdato", DOB), ("Telefon", PHONE),
        ("Mobilnummer", PHONE), ("E-post", EMAIL), ("Adresse", ADDRESS),
        ("Postnummer", ADDRESS), ("Fødselsnummer", NATIONAL_ID), ("Personnummer", NATIONAL_ID),
    ],
    "da": [
        ("Navn", NAME), ("Fornavn", NAME), ("Efternavn", NAME), ("Fulde navn", NAME),
        ("Initialer", INITIALS), ("Fødselsdato", DOB), ("Telefonnummer", PHONE),
        ("Mobil", PHONE), ("E-mailadresse", EMAIL), ("Adresse", ADDRESS), ("Vejnavn", ADDRESS),
        ("CPR-nummer", NATIONAL_ID), ("CPR", NATIONAL_ID),
    ],
    "fi": [
        ("Nimi", NAME), ("Etunimi", NAME), ("Sukunimi", NAME), ("Potilaan nimi", NAME),
        ("Nimikirjaimet", INITIALS), ("Syntymäaika", DOB), ("Syntymäpäivä", DOB),
        ("Puhelinnumero", PHONE), ("Matkapuhelin", PHONE), ("Sähköposti", EMAIL),
        ("Sähköpostiosoite", EMAIL), ("Osoite", ADDRESS), ("Postinumero", ADDRESS),
        ("Henkilötunnus", NATIONAL_ID), ("HETU", NATIONAL_ID),
    ],
    "pl": [
        ("Imię", NAME), ("Nazwisko", NAME), ("Imię i nazwisko", NAME), ("Imię pacjenta", NAME),
        ("Inicjały", INITIALS), ("Data urodzenia", DOB), ("Telefon", PHONE),
        ("Numer telefonu", PHONE), ("Telefon komórkowy", PHONE), ("Adres e-mail", EMAIL),
        ("Adres", ADDRESS), ("Ulica", ADDRESS), ("Kod pocztowy", ADDRESS),
        ("PESEL", NATIONAL_ID), ("Nr dowodu osobistego", NATIONAL_ID),
    ],
    "ja": [
        ("氏名", NAME), ("患者氏名", NAME), ("名前", NAME), ("フリガナ", NAME),
        ("ふりがな", NAME), ("ﾌﾘｶﾞﾅ", NAME), ("カナ氏名", NAME), ("被験者名", NAME),
        ("イニシャル", INITIALS), ("患者イニシャル", INITIALS), ("生年月日", DOB),
        ("誕生日", DOB), ("電話番号", PHONE), ("携帯電話", PHONE), ("メールアドレス", EMAIL),
        ("Ｅメール", EMAIL), ("住所", ADDRESS), ("郵便番号", ADDRESS),
        ("マイナンバー", NATIONAL_ID), ("被保険者番号", NATIONAL_ID),
    ],
    "zh": [
        ("姓名", NAME), ("患者姓名", NAME), ("受试者姓名", NAME), ("名字", NAME),
        ("姓名缩写", INITIALS), ("出生日期", DOB), ("生日", DOB), ("联系电话", PHONE),
        ("手机号", PHONE), ("電話", PHONE), ("电子邮件", EMAIL), ("邮箱", EMAIL),
        ("地址", ADDRESS), ("家庭住址", ADDRESS), ("邮政编码", ADDRESS),
        ("身份证号", NATIONAL_ID), ("身分證字號", NATIONAL_ID), ("护照号码", NATIONAL_ID),
    ],
    "ko": [
        ("이름", NAME), ("환자 이름", NAME), ("성명", NAME), ("환자명", NAME),
        ("이니셜", INITIALS), ("생년월일", DOB), ("전화번호", PHONE), ("휴대폰", PHONE),
        ("연락처", PHONE), ("이메일", EMAIL), ("주소", ADDRESS), ("우편번호", ADDRESS),
        ("주민등록번호", NATIONAL_ID), ("여권번호", NATIONAL_ID),
    ],
}  # fmt: skip

LANGUAGES = (
    "en",
    "es",
    "pt",
    "fr",
    "de",
    "it",
    "nl",
    "sv",
    "no",
    "da",
    "fi",
    "pl",
    "ja",
    "zh",
    "ko",
)


def test_every_language_has_at_least_five_positive_headers():
    assert set(LANGUAGES) <= set(POSITIVE)
    assert all(len(POSITIVE[lang]) >= 5 for lang in LANGUAGES)
    assert set(LANGUAGES) | {"sdtm"} <= {
        lang for table in IDENTIFIER_TERMS.values() for lang in table
    }


@pytest.mark.parametrize(
    ("header", "kind"),
    [pytest.param(h, k, id=f"{lang}:{h}") for lang, rows in POSITIVE.items() for h, k in rows],
)
def test_direct_identifier_header_is_recognised(header, kind):
    assert direct_identifier_kind(header) == kind


def _generated_headers() -> set[str]:
    return {
        header
        for dialect in DIALECTS.values()
        for feed in dialect.feeds
        for header in dialect.header(feed)
    }


SDTM_NOT_IDENTIFIERS = (
    "STUDYID", "DOMAIN", "USUBJID", "SUBJID", "SITEID", "INVID", "INVNAM", "AGE", "AGEU", "SEX",
    "RACE", "ETHNIC", "COUNTRY", "DMDTC", "DMDY", "RFSTDTC", "RFENDTC", "RFXSTDTC", "RFXENDTC",
    "RFICDTC", "RFPENDTC", "DTHDTC", "DTHFL", "ARMCD", "ARM", "ACTARMCD", "ACTARM", "VISIT",
    "VISITNUM", "SVSTDTC", "DSDECOD", "DSTERM", "DSCAT", "DSSTDTC", "EPOCH", "DVTERM", "DVDECOD",
    "DVCAT", "DVSCAT", "DVSPID", "DVSEQ", "DVSTDTC", "AETERM", "AEDECOD", "AESTDTC",
)  # fmt: skip

#: Headers common in clinical exports that are not patient identifiers. Site staff are not
#: patients: an investigator's or coordinator's name, e-mail or phone passes.
CLINICAL_NOT_IDENTIFIERS = (
    "Investigator name", "Investigator Name", "PI Name", "Principal Investigator",
    "Sub-investigator name", "CRC name", "Coordinator e-mail", "Monitor Email", "Site Name",
    "Site Address", "Site phone", "Site contact phone", "Sponsor contact e-mail", "Study Name",
    "Visit Name", "Visit Date", "Date of Visit", "Drug Name", "Test name", "Lab Name",
    "PT Name", "Preferred Term", "Form name", "Event name", "User name", "Country of birth",
    "Year of birth", "Age", "Age at consent", "Sex", "Gender", "Race", "Ethnicity", "Weight",
    "Height", "BMI", "Subject ID", "Patient ID", "Patient number", "Subject Number",
    "Screening Number", "Randomization Number", "Date of consent", "Informed Consent Date",
    "Date of Deviation", "Deviation Description", "Adverse Event Term", "Red Cell Count",
    "White blood cell", "Mobile unit visit", "Post-randomisation visit", "Initial visit date",
    "Number of days", "Liczba dni", "Dni od randomizacji", "Nombre del centro",
    "Nombre del estudio", "Nom du centre", "Nome del centro", "Naam van het centrum",
    "Prüfzentrum", "Zentrumsname", "Centro", "Ciudad", "País", "Padres", "Médico responsable",
    "Investigador principal", "Fecha de visita", "Fecha de consentimiento",
    "発生日", "発生日時", "来院日", "施設名", "責任医師", "責任医師氏名", "治験責任医師名",
    "担当CRC氏名", "被験者識別コード", "被験者番号", "性別", "年齢",
    "发生日期", "中心名称", "研究中心", "研究者姓名", "主要研究者", "受试者编号", "筛选日期",
    "随机日期", "访视名称", "性别", "年龄", "国家", "城市",
    "시험기관 이름", "방문 이름", "방문일", "연구자 이름", "피험자 번호", "성별", "나이",
    "Site #", "Staff ID", "Line ID", "NCT Number", "eCRF Entered", "__UNNAMED__3",
)  # fmt: skip


@pytest.mark.parametrize("header", sorted(_generated_headers()))
def test_no_generated_dialect_header_is_an_identifier(header):
    assert direct_identifier_kind(header) is None


@pytest.mark.parametrize(
    "header", sorted({c for feed in FEEDS.values() for c in feed.column_names})
)
def test_no_canonical_column_is_an_identifier(header):
    assert direct_identifier_kind(header) is None
    assert direct_identifier_kind(header.upper()) is None


@pytest.mark.parametrize("header", SDTM_NOT_IDENTIFIERS)
def test_sdtm_variables_other_than_brthdtc_are_not_identifiers(header):
    assert direct_identifier_kind(header) is None


@pytest.mark.parametrize("header", CLINICAL_NOT_IDENTIFIERS)
def test_common_clinical_headers_are_not_identifiers(header):
    assert direct_identifier_kind(header) is None


@pytest.mark.parametrize(
    ("header", "normalised"),
    [
        ("Fecha de Nacimiento", "fecha nacimiento"),
        ("fecha_nacimiento", "fecha nacimiento"),
        ("patientDateOfBirth", "patient date birth"),
        ("D.O.B.", "dob"),
        ("ＰＡＴＩＥＮＴ　ＮＡＭＥ", "patient name"),
        ("ﾌﾘｶﾞﾅ", "フリガナ"),  # half-width kana fold, and keep their voicing mark
        ("Straße", "strasse"),
        ("Nazwisko/Imię", "nazwisko imie"),
        ("SiteID2", "site id 2"),
    ],
)
def test_normalisation(header, normalised):
    assert normalise_header(header) == normalised
