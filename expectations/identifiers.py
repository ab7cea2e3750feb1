"""The "no direct identifiers" rule: column headers that suggest patient-identifying data.

Subject ids are study pseudonyms; a delivery must not carry names, initials, birth dates,
phone numbers, e-mail or postal addresses, or national ids, in any language the SMOs use.
Headers are matched after lower-casing, so "Patient Name", "PATIENT_NAME" and "patient-name"
are one case.
"""

from __future__ import annotations

import re

#: (what it is, pattern). Patterns run on the lower-cased header with separators as spaces.
_PATTERNS: tuple[tuple[str, str], ...] = (
    ("patient name", r"\b(patient|subject|participant|first|last|given|family|full|sur)\s?name\b"),
    (
        "patient name",
        r"^nombre$|\bnombre (del? |y )?(paciente|sujeto|participante|apellidos?)\b"
        r"|\b(apellidos?|nom du patient|prénom|prenom|vorname|nachname)\b",
    ),
    ("patient name", r"(姓名|氏名|患者名|名前)"),
    ("initials", r"\b(initials|iniciales|initiales|pt init)\b|イニシャル|姓名缩写"),
    (
        "date of birth",
        r"\b(date of birth|birth ?date|dob|fecha de nacimiento|date de naissance|geburtsdatum)\b",
    ),
    ("date of birth", r"(生年月日|出生日期)"),
    ("phone", r"\b(phone|telephone|téléphone|teléfono|telefono|mobile|cell)\b|電話|电话"),
    ("e-mail", r"\b(e ?mail|correo|courriel)\b|メール|邮箱"),
    ("address", r"\b(address|street|dirección|direccion|adresse|anschrift)\b|住所|地址"),
    ("national id", r"\b(ssn|social security|national id|nhs number|passport|dni|nir|curp)\b"),
    ("national id", r"(マイナンバー|身份证)"),
)
_COMPILED = tuple((what, re.compile(p)) for what, p in _PATTERNS)


def direct_identifier_kind(header: str) -> str | None:
    """What identifier a header suggests, or None."""
    text = re.sub(r"[_\-./]+", " ", header.strip().lower())
    for what, pattern in _COMPILED:
        if pattern.search(text):
            return what
    return None
