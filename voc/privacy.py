"""Personal details masked where many people read (dashboards, the month index, Prefect artifacts).

Complaints often carry the writer's contact details ("연락 주세요 010-1234-5678",
"hong@example.com 으로 회신"). The tagged CSV and the reviewer's own sheet keep the original
text (a reviewer may need to call back); everything shown to a wider audience goes through
:func:`mask_personal_details`, which replaces (digits glued to other digits or to ``_`` never match: ``020180315_0728.jpg`` is a file name):

* **e-mail addresses** → ``[이메일]``: ``local@domain.tld`` — a local part of letters, digits and
  ``. _ % + -``, domain labels of letters, digits and inner ``-``, a top-level domain of two or
  more letters (the common form of RFC 5322 addresses);
* **resident registration numbers** (주민등록번호) → ``[주민번호]``: ``YYMMDD-NNNNNNN`` — a
  six-digit birth date (month 01–12, day 01–31), ``-`` (or a space, or nothing), then the
  sex/century digit 1–8 and six more digits, or ``*`` in an already half-masked
  ``900101-1******``;
* **phone numbers** → ``[전화번호]``: mobile ``010``/``011``/``016``–``019``, Seoul ``02``, the
  area codes ``031``–``033``, ``041``–``044``, ``051``–``055``, ``061``–``064``, ``070`` (internet
  phone), ``050x`` (safe numbers), ``080``, in parentheses or not, then 3–4 and 4 digits
  separated by ``-``, ``.``, ``)``, spaces or nothing (``010-1234-5678``, ``01012345678``,
  ``(02) 123-4567``, ``032.123.4567``); and the same numbers in international form, ``+82`` with
  the trunk ``0`` dropped or in parentheses (``+82 10-1234-5678``, ``+82-(0)2-123-4567``).

Sources of the number plans: the Ministry of Science and ICT's telephone numbering plan
(전기통신번호관리세칙: area codes 02 and 031–064, mobile 010/011/016–019, 070, 050x, 080) and the
resident registration number layout of the Resident Registration Act's enforcement rules
(주민등록법 시행규칙: six-digit birth date, a hyphen, a seven-digit number whose first digit gives
sex and century). Company representative numbers (``1588-xxxx``) are not personal and are kept.

Masks are applied in that order (an e-mail address may hold digits that look like a phone
number; a resident number holds 13 digits no phone number has). Masking is idempotent and pure.
"""

from __future__ import annotations

import re

__all__ = [
    "EMAIL_MASK",
    "PHONE_MASK",
    "RRN_MASK",
    "PERSONAL_DETAIL_PATTERNS",
    "mask_personal_details",
    "remove_personal_details",
]

EMAIL_MASK = "[이메일]"
PHONE_MASK = "[전화번호]"
RRN_MASK = "[주민번호]"

_EMAIL_RE = re.compile(
    r"[A-Za-z0-9._%+\-]+@"  # local part
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*"  # labels
    r"\.[A-Za-z]{2,}"  # top-level domain
)
_RRN_RE = re.compile(r"(?<![0-9])[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[ \t]?[-–][ \t]?[1-8][0-9*]{6}(?![0-9])"
                     r"|(?<![0-9])[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[ \t]?[1-8][0-9]{6}(?![0-9])")
_SEP = r"(?:[ \t]*[-.)][ \t]*|[ \t]+)?"
_AREA = r"(?:1[016789]|2|3[1-3]|4[1-4]|5[1-5]|6[1-4]|70|50[0-9]|80)"
"""A national number's area / service code without the trunk ``0``."""
_PHONE_RE = re.compile(
    r"(?<![0-9_+])(?:\(0" + _AREA + r"\)|0" + _AREA + r")" + _SEP + r"[0-9]{3,4}" + _SEP + r"[0-9]{4}(?![0-9_])"
    r"|\+[ \t]?82[ \t\-.]*(?:\(0\)[ \t]*)?(?:\(" + _AREA + r"\)|" + _AREA + r")" + _SEP + r"[0-9]{3,4}" + _SEP + r"[0-9]{4}(?![0-9_])"
)

PERSONAL_DETAIL_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (_EMAIL_RE, EMAIL_MASK),
    (_RRN_RE, RRN_MASK),
    (_PHONE_RE, PHONE_MASK),
)
"""``(pattern, mask)`` in the order :func:`mask_personal_details` applies them."""


def mask_personal_details(text: str) -> str:
    """``text`` with e-mail addresses, resident registration numbers and Korean phone numbers
    replaced by ``[이메일]``, ``[주민번호]`` and ``[전화번호]`` (patterns: module docstring).

    Parameters
    ----------
    text
        Any text (``None`` or a non-string is returned as it is, so cells can be passed
        through unchanged).

    Returns
    -------
    str
        The text with every match replaced; everything else is unchanged. ``f(f(x)) == f(x)``.
    """
    if not isinstance(text, str) or not text:
        return text
    for pattern, mask in PERSONAL_DETAIL_PATTERNS:
        text = pattern.sub(mask, text)
    return text


def remove_personal_details(text: str) -> str:
    """``text`` with the personal details of :func:`mask_personal_details` replaced by a space
    (no mask word): for keyword extraction and word clouds, where ``[이메일]`` would be counted
    as a word."""
    if not isinstance(text, str) or not text:
        return text
    for pattern, _mask in PERSONAL_DETAIL_PATTERNS:
        text = pattern.sub(" ", text)
    return text
