"""Fill the ``net119`` schema with a synthetic population of stations and users.

The population looks like real NET119 data so that the demo, the benchmark and
the tests exercise the same cases as production:

* fire departments such as 「桜川市消防本部」, with fictional phone and FAX
  numbers (``0xx-xxx-xxxx``) and contact and report addresses under
  ``example.jp``. Every fourth station wants its CSV reports in CP932;
* users with Japanese names (JIS X 0208 characters only), spread unevenly
  over the stations, whose ``expires_at`` lies between 200 days before and
  530 days after the reference date, at a random time of day in Asia/Tokyo;
* addresses mostly at mobile carriers (docomo, au, SoftBank) and webmail;
  1 % are pre-2009 carrier addresses with ``..`` or a dot before ``@``
  (stored exactly as written), and 0.1 % (at least one of each kind) are
  invalid, so the pipeline has addresses to fail one by one;
* phone, FAX, postal code and postal address filled for most users.

The same arguments always produce the same rows. Users are written with
``COPY`` in chunks, so a million users take seconds rather than minutes.

Command line::

    python -m net119.devtools.seed --database-url URL --users 5000 --stations 8 \\
        --date 2026-12-04
"""

from __future__ import annotations

import argparse
import bisect
import io
import itertools
import logging
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

from psycopg2 import sql

from net119 import db

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

log = logging.getLogger(__name__)

TOKYO = ZoneInfo("Asia/Tokyo")
T = TypeVar("T")

DEFAULT_USERS = 5_000
DEFAULT_STATIONS = 8
# expires_at lies in [reference date - 200 days, reference date + 530 days].
EXPIRY_DAYS_BEFORE = 200
EXPIRY_DAYS_AFTER = 530
# Rows per COPY statement; each chunk is built in memory first.
COPY_CHUNK_ROWS = 50_000

# (kanji, romaji) pairs. Only JIS X 0208 characters, because mails and
# letters keep to that set.
FAMILY_NAMES: tuple[tuple[str, str], ...] = (
    ("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka"),
    ("伊藤", "ito"), ("渡辺", "watanabe"), ("山本", "yamamoto"), ("中村", "nakamura"),
    ("小林", "kobayashi"), ("加藤", "kato"), ("吉田", "yoshida"), ("山田", "yamada"),
    ("佐々木", "sasaki"), ("山口", "yamaguchi"), ("松本", "matsumoto"),
    ("井上", "inoue"), ("木村", "kimura"), ("林", "hayashi"), ("斎藤", "saito"),
    ("清水", "shimizu"), ("山崎", "yamazaki"), ("森", "mori"), ("池田", "ikeda"),
    ("橋本", "hashimoto"), ("阿部", "abe"), ("石川", "ishikawa"),
    ("山下", "yamashita"), ("中島", "nakajima"), ("石井", "ishii"), ("小川", "ogawa"),
    ("前田", "maeda"), ("岡田", "okada"), ("長谷川", "hasegawa"), ("藤田", "fujita"),
    ("後藤", "goto"), ("近藤", "kondo"), ("村上", "murakami"), ("遠藤", "endo"),
    ("青木", "aoki"), ("坂本", "sakamoto"), ("斉藤", "saito"), ("福田", "fukuda"),
    ("太田", "ota"), ("西村", "nishimura"), ("藤井", "fujii"), ("金子", "kaneko"),
    ("岡本", "okamoto"), ("藤原", "fujiwara"), ("中野", "nakano"), ("三浦", "miura"),
    ("原田", "harada"), ("中川", "nakagawa"), ("松田", "matsuda"),
    ("竹内", "takeuchi"), ("小野", "ono"), ("田村", "tamura"), ("中山", "nakayama"),
    ("和田", "wada"), ("石田", "ishida"), ("森田", "morita"), ("上田", "ueda"),
    ("原", "hara"), ("内田", "uchida"), ("柴田", "shibata"), ("酒井", "sakai"),
    ("工藤", "kudo"), ("横山", "yokoyama"), ("宮崎", "miyazaki"),
    ("宮本", "miyamoto"), ("高木", "takagi"),
)

GIVEN_NAMES: tuple[tuple[str, str], ...] = (
    ("太郎", "taro"), ("一郎", "ichiro"), ("健太", "kenta"), ("翔太", "shota"),
    ("大輔", "daisuke"), ("直樹", "naoki"), ("拓也", "takuya"), ("和也", "kazuya"),
    ("浩二", "koji"), ("誠", "makoto"), ("隆", "takashi"), ("修", "osamu"),
    ("博", "hiroshi"), ("茂", "shigeru"), ("勇", "isamu"), ("清", "kiyoshi"),
    ("進", "susumu"), ("正雄", "masao"), ("昭", "akira"), ("悠斗", "yuto"),
    ("蓮", "ren"), ("大翔", "hiroto"), ("陽翔", "haruto"), ("湊", "minato"),
    ("花子", "hanako"), ("洋子", "yoko"), ("幸子", "sachiko"), ("恵子", "keiko"),
    ("京子", "kyoko"), ("久美子", "kumiko"), ("由美子", "yumiko"), ("裕子", "yuko"),
    ("直美", "naomi"), ("真由美", "mayumi"), ("明美", "akemi"), ("智子", "tomoko"),
    ("陽子", "yoko"), ("美穂", "miho"), ("愛", "ai"), ("舞", "mai"), ("彩", "aya"),
    ("結衣", "yui"), ("美咲", "misaki"), ("陽菜", "hina"), ("葵", "aoi"),
    ("さくら", "sakura"), ("芽衣", "mei"), ("真央", "mao"), ("千尋", "chihiro"),
    ("春香", "haruka"), ("奈々", "nana"), ("綾乃", "ayano"), ("和子", "kazuko"),
    ("節子", "setsuko"), ("トシ子", "toshiko"), ("ミツ", "mitsu"),
)

# Place names of the stations: first part + second part, e.g. 桜 + 川.
_PLACE_HEADS: tuple[tuple[str, str], ...] = (
    ("桜", "sakura"), ("松", "matsu"), ("杉", "sugi"), ("梅", "ume"), ("竹", "take"),
    ("柳", "yanagi"), ("藤", "fuji"), ("菊", "kiku"), ("鶴", "tsuru"), ("亀", "kame"),
    ("白", "shira"), ("黒", "kuro"), ("青", "ao"), ("赤", "aka"), ("金", "kane"),
    ("石", "ishi"), ("岩", "iwa"), ("泉", "izumi"), ("若", "waka"), ("朝", "asa"),
    ("北", "kita"), ("南", "minami"), ("東", "higashi"), ("西", "nishi"),
)
_PLACE_TAILS: tuple[tuple[str, str], ...] = (
    ("川", "kawa"), ("田", "ta"), ("野", "no"), ("原", "hara"), ("山", "yama"),
    ("沢", "sawa"), ("浜", "hama"), ("津", "tsu"), ("岡", "oka"), ("崎", "saki"),
    ("島", "shima"), ("井", "i"), ("宮", "miya"), ("谷", "ya"), ("瀬", "se"),
    ("部", "be"),
)
# (name suffix, slug suffix). Cities first, so small populations get
# 「〇〇市消防本部」; regional fire services follow for large ones.
_STATION_KINDS: tuple[tuple[str, str], ...] = (
    ("市消防本部", "city"),
    ("地区広域消防本部", "kouiki"),
    ("地区消防組合消防本部", "kumiai"),
)
PREFECTURES: tuple[str, ...] = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県",
    "栃木県", "群馬県", "埼玉県", "千葉県", "新潟県", "富山県", "石川県", "長野県",
    "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "兵庫県", "奈良県", "岡山県",
    "広島県", "山口県", "香川県", "愛媛県", "福岡県", "熊本県", "大分県", "鹿児島県",
)
STREETS: tuple[str, ...] = (
    "本町", "中央", "栄町", "緑町", "旭町", "幸町", "元町", "駅前", "東町", "西町",
    "南町", "北町", "新町", "城東", "城西", "若葉", "日の出町", "寿町",
)
BUILDINGS: tuple[str, ...] = (
    "サンハイツ", "コーポ若葉", "メゾン緑", "レジデンス中央", "グリーンハイツ",
    "パークハイム", "第二松風荘",
)

# Address domains and their share of users. Carriers first: docomo, au
# (ezweb.ne.jp, au.com), SoftBank (softbank.ne.jp, i.softbank.jp).
EMAIL_DOMAINS: tuple[tuple[str, int], ...] = (
    ("docomo.ne.jp", 24),
    ("ezweb.ne.jp", 10),
    ("au.com", 8),
    ("softbank.ne.jp", 6),
    ("i.softbank.jp", 10),
    ("gmail.com", 20),
    ("yahoo.co.jp", 10),
    ("icloud.com", 8),
    ("outlook.jp", 2),
    ("hotmail.co.jp", 2),
)
# Carriers that issued addresses with ".." or "." before "@" until 2009.
LEGACY_DOMAINS: tuple[str, ...] = ("docomo.ne.jp", "ezweb.ne.jp")
LEGACY_SHARE = 0.01
INVALID_SHARE = 0.001

# Share of users that have each optional contact field.
PHONE_SHARE = 0.85
FAX_SHARE = 0.70
POSTAL_SHARE = 0.92

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_ALNUM = _LETTERS + "0123456789"
# Escapes of COPY's text format. Only the e-mail column is escaped, because
# the other columns come from the fixed lists above.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

_USER_COLUMNS = (
    "id",
    "station_id",
    "name",
    "email",
    "expires_at",
    "phone",
    "fax",
    "postal_code",
    "postal_address",
    "registered_at",
)


class SeedError(RuntimeError):
    """The database is not in a state that can be seeded."""


@dataclass(frozen=True)
class Station:
    id: str
    name: str
    report_emails: tuple[str, ...]
    contact_phone: str
    contact_fax: str
    contact_email: str
    postal_address: str
    report_csv_encoding: str
    # Used for the users' addresses and FAX numbers, not stored as such.
    area_code: str
    postal_prefix: str
    locality: str


@dataclass(frozen=True)
class SeedSummary:
    stations: int
    users: int
    legacy_addresses: int
    invalid_addresses: int
    seconds: float


def _make_invalid_missing_at(local: str, domain: str, kanji: str) -> str:
    return f"{local}.{domain}"


def _make_invalid_space(local: str, domain: str, kanji: str) -> str:
    # A space where the user meant a separator, or else in the middle.
    for separator in "._-":
        if separator in local:
            return f"{local.replace(separator, ' ', 1)}@{domain}"
    middle = len(local) // 2
    return f"{local[:middle]} {local[middle:]}@{domain}"


def _make_invalid_non_ascii(local: str, domain: str, kanji: str) -> str:
    return f"{kanji}@{domain}"


def _make_invalid_fullwidth_at(local: str, domain: str, kanji: str) -> str:
    return f"{local}\uff20{domain}"


def _make_invalid_two_at(local: str, domain: str, kanji: str) -> str:
    return f"{local}@@{domain}"


def _make_invalid_no_domain(local: str, domain: str, kanji: str) -> str:
    return f"{local}@"


# Invalid addresses of the kinds that typing mistakes produce. A non-ASCII
# local part would be legal under SMTPUTF8 (RFC 6531), but the pipeline
# rejects it because carriers issue ASCII addresses only.
INVALID_ADDRESS_KINDS: dict[str, Callable[[str, str, str], str]] = {
    "missing_at": _make_invalid_missing_at,
    "space_inside": _make_invalid_space,
    "non_ascii_local_part": _make_invalid_non_ascii,
    "fullwidth_at": _make_invalid_fullwidth_at,
    "two_at_signs": _make_invalid_two_at,
    "missing_domain": _make_invalid_no_domain,
}


def _phone(rng: random.Random, area_code: str) -> str:
    """Return a fixed-line number ``0xx-xxx-xxxx`` in ``area_code``."""
    return f"{area_code}-{rng.randrange(200, 1000)}-{rng.randrange(10000):04d}"


def _mobile(rng: random.Random) -> str:
    prefix = ("090", "080", "070")[rng.randrange(3)]
    return f"{prefix}-{rng.randrange(1000, 10000)}-{rng.randrange(10000):04d}"


def _street_address(rng: random.Random) -> str:
    street = STREETS[rng.randrange(len(STREETS))]
    return (
        f"{street}{rng.randrange(1, 8)}丁目{rng.randrange(1, 30)}番"
        f"{rng.randrange(1, 25)}号"
    )


def build_stations(rng: random.Random, count: int) -> list[Station]:
    """Return ``count`` stations with distinct names, ids ``st0001``, ``st0002``, …

    Raises ``ValueError`` when ``count`` exceeds the number of distinct names.
    """
    places = [
        (head[0] + tail[0], head[1] + tail[1])
        for head, tail in itertools.product(_PLACE_HEADS, _PLACE_TAILS)
    ]
    rng.shuffle(places)
    candidates = [
        (place, kind) for kind in _STATION_KINDS for place in places
    ]
    if count > len(candidates):
        raise ValueError(
            f"at most {len(candidates)} stations can be generated, got {count}"
        )

    stations: list[Station] = []
    for index, ((place, romaji), (suffix, slug)) in enumerate(
        candidates[:count], start=1
    ):
        domain = f"{romaji}-{slug}.example.jp"
        # Fixed-line area codes look like 0XY with X and Y from 1 to 9, because
        # 0X0 codes (050, 070, 080, 090, ...) are IP phones, mobiles and pagers.
        area_code = f"0{rng.randrange(1, 10)}{rng.randrange(1, 10)}"
        postal_prefix = f"{rng.randrange(10, 100)}{rng.randrange(10)}"
        prefecture = PREFECTURES[rng.randrange(len(PREFECTURES))]
        locality = f"{prefecture}{place}市"
        report_emails = [f"net119-report@{domain}"]
        if index % 3 == 0:
            report_emails.append(f"shirei@{domain}")
        stations.append(
            Station(
                id=f"st{index:04d}",
                name=f"{place}{suffix}",
                report_emails=tuple(report_emails),
                contact_phone=_phone(rng, area_code),
                contact_fax=_phone(rng, area_code),
                contact_email=f"net119@{domain}",
                postal_address=(
                    f"〒{postal_prefix}-{rng.randrange(10000):04d} "
                    f"{locality}{_street_address(rng)}"
                ),
                report_csv_encoding="cp932" if index % 4 == 0 else "utf-8-sig",
                area_code=area_code,
                postal_prefix=postal_prefix,
                locality=locality,
            )
        )
    return stations


def _local_part(rng: random.Random, family_name: str, given_name: str) -> str:
    """Return an address local part of the kinds users pick on carriers and webmail."""
    pattern = rng.randrange(8)
    if pattern == 0:
        local = f"{given_name}.{family_name}"
    elif pattern == 1:
        local = f"{family_name}.{given_name}"
    elif pattern == 2:
        local = f"{given_name}_{family_name}"
    elif pattern == 3:
        local = f"{given_name[0]}-{family_name}"
    elif pattern == 4:
        local = f"{given_name}{rng.randrange(40, 100):02d}"
    elif pattern == 5:
        month_day = f"{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        local = f"{family_name}{given_name[0]}{month_day}"
    elif pattern == 6:
        # Random strings like the addresses carriers assign at sign-up.
        local = rng.choice(_LETTERS) + "".join(
            rng.choice(_ALNUM) for _ in range(rng.randrange(7, 12))
        )
    else:
        local = f"{given_name}-{family_name}-{rng.randrange(100, 1000)}"
    if pattern != 6 and rng.random() < 0.5:
        local += str(rng.randrange(1, 10000))
    return local


def _legacy_local_part(rng: random.Random, family_name: str, given_name: str) -> str:
    """Return a pre-2009 carrier local part with ``..`` or a trailing dot."""
    pattern = rng.randrange(4)
    if pattern == 0:
        return f"{given_name}..{family_name}"
    if pattern == 1:
        return f"{given_name}.{family_name}."
    if pattern == 2:
        return f"{given_name}..{family_name}."
    return f"{family_name}.{given_name}.{rng.randrange(40, 100):02d}."


def _pick(rng: random.Random, values: Sequence[T], cumulative: Sequence[float]) -> T:
    """Return one of ``values``, weighted by the ``cumulative`` weights."""
    return values[bisect.bisect_right(cumulative, rng.random() * cumulative[-1])]


def _minus_years(moment: datetime, years: int) -> datetime:
    """Return ``moment`` ``years`` calendar years earlier.

    29 February maps to 28 February.
    """
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def _special_addresses(rng: random.Random, users: int) -> dict[int, str]:
    """Return the row indexes that get a pre-2009 ("legacy") or an invalid address.

    The value is ``"legacy"`` or a key of ``INVALID_ADDRESS_KINDS``. Every
    invalid kind occurs at least once when there are enough users.
    """
    kinds = list(INVALID_ADDRESS_KINDS)
    invalid = min(users, max(len(kinds), int(users * INVALID_SHARE)))
    legacy = min(users - invalid, max(1, int(users * LEGACY_SHARE)))
    rows = rng.sample(range(users), invalid + legacy)
    special = {row: kinds[i % len(kinds)] for i, row in enumerate(rows[:invalid])}
    special.update((row, "legacy") for row in rows[invalid:])
    return special


def generate_user_rows(
    rng: random.Random,
    stations: Sequence[Station],
    users: int,
    reference_date: date,
    special: dict[int, str],
) -> Iterator[tuple[str, ...]]:
    """Yield one tuple of COPY text fields per user, in the order of ``_USER_COLUMNS``.

    User ids run from 1 to ``users``. ``special`` comes from
    ``_special_addresses`` and marks the rows with unusual addresses.
    """
    # Stations differ in size: weights fall off like 1/rank**0.7.
    station_weights = [1 / (rank**0.7) for rank in range(1, len(stations) + 1)]
    rng.shuffle(station_weights)
    station_cumulative = list(itertools.accumulate(station_weights))
    domains = [domain for domain, _ in EMAIL_DOMAINS]
    domain_cumulative = list(itertools.accumulate(share for _, share in EMAIL_DOMAINS))

    midnight = datetime.combine(reference_date, datetime.min.time(), tzinfo=TOKYO)
    reference_moment = midnight + timedelta(hours=9)
    first_second = -EXPIRY_DAYS_BEFORE * 86400
    last_second = (EXPIRY_DAYS_AFTER + 1) * 86400

    for index in range(users):
        station = _pick(rng, stations, station_cumulative)
        family_kanji, family_romaji = FAMILY_NAMES[rng.randrange(len(FAMILY_NAMES))]
        given_kanji, given_romaji = GIVEN_NAMES[rng.randrange(len(GIVEN_NAMES))]
        name = f"{family_kanji}\u3000{given_kanji}"

        kind = special.get(index)
        if kind == "legacy":
            domain = LEGACY_DOMAINS[rng.randrange(len(LEGACY_DOMAINS))]
            email = f"{_legacy_local_part(rng, family_romaji, given_romaji)}@{domain}"
        else:
            domain = _pick(rng, domains, domain_cumulative)
            local = _local_part(rng, family_romaji, given_romaji)
            if kind is None:
                email = f"{local}@{domain}"
            else:
                email = INVALID_ADDRESS_KINDS[kind](
                    local, domain, family_kanji + given_kanji
                )

        # Whole seconds, evenly spread over the expiry window.
        expires_at = midnight + timedelta(
            seconds=rng.randrange(first_second, last_second)
        )
        # Registered one or more whole years before expiry, never in the future.
        years = 1 + rng.randrange(5)
        registered_at = _minus_years(expires_at, years)
        while registered_at > reference_moment:
            years += 1
            registered_at = _minus_years(expires_at, years)

        phone = _mobile(rng) if rng.random() < PHONE_SHARE else ""
        fax = _phone(rng, station.area_code) if rng.random() < FAX_SHARE else ""
        if rng.random() < POSTAL_SHARE:
            postal_code = f"{station.postal_prefix}-{rng.randrange(10000):04d}"
            postal_address = station.locality + _street_address(rng)
            if rng.random() < 0.3:
                building = BUILDINGS[rng.randrange(len(BUILDINGS))]
                room = f"{rng.randrange(1, 6)}0{rng.randrange(1, 9)}"
                postal_address += f" {building}{room}号室"
        else:
            postal_code = ""
            postal_address = ""

        yield (
            str(index + 1),
            station.id,
            name,
            email.translate(_COPY_ESCAPES),
            expires_at.isoformat(" "),
            phone,
            fax,
            postal_code,
            postal_address,
            registered_at.isoformat(" "),
        )


def _count_rows(conn: Connection, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("net119", table))
        )
        row = cur.fetchone()
    assert row is not None
    return int(row[0])


def truncate_tables(conn: Connection) -> list[str]:
    """Empty every table of schema ``net119`` except the migration record.

    Sequences restart, so ids start at 1 again. Return the tables emptied.
    The caller commits.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT tablename FROM pg_tables"
            " WHERE schemaname = 'net119' AND tablename <> 'schema_migrations'"
            " ORDER BY tablename"
        )
        tables = [row[0] for row in cur.fetchall()]
        if tables:
            cur.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier("net119", t) for t in tables)
                )
            )
    return tables


def _insert_stations(conn: Connection, stations: Sequence[Station]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO net119.stations (id, name, report_emails, contact_phone,"
            " contact_fax, contact_email, postal_address, report_csv_encoding)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    s.id,
                    s.name,
                    list(s.report_emails),
                    s.contact_phone,
                    s.contact_fax,
                    s.contact_email,
                    s.postal_address,
                    s.report_csv_encoding,
                )
                for s in stations
            ],
        )


def _copy_users(conn: Connection, rows: Iterator[tuple[str, ...]]) -> int:
    statement = "COPY net119.users ({}) FROM STDIN WITH (FORMAT text)".format(
        ", ".join(_USER_COLUMNS)
    )
    written = 0
    with conn.cursor() as cur:
        while True:
            chunk = list(itertools.islice(rows, COPY_CHUNK_ROWS))
            if not chunk:
                break
            buffer = io.StringIO()
            buffer.writelines("\t".join(row) + "\n" for row in chunk)
            buffer.seek(0)
            cur.copy_expert(statement, buffer)
            written += len(chunk)
            log.debug("Copied %d users", written)
    return written


def seed(
    conn: Connection,
    *,
    users: int = DEFAULT_USERS,
    stations: int = DEFAULT_STATIONS,
    reference_date: date,
    seed: int = 0,
    replace: bool = False,
) -> SeedSummary:
    """Insert ``stations`` stations and ``users`` users and commit.

    ``reference_date`` (an Asia/Tokyo date) centres the expiry window and
    ``seed`` selects the population: equal arguments give equal rows.
    Raises ``SeedError`` when the schema is missing or already has stations
    or users, unless ``replace`` empties the ``net119`` tables first.
    """
    if users < 0:
        raise ValueError(f"users must be 0 or more, got {users}")
    if stations < 1:
        raise ValueError(f"stations must be 1 or more, got {stations}")
    started = time.monotonic()

    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('net119.users')")
        row = cur.fetchone()
    if row is None or row[0] is None:
        conn.rollback()
        raise SeedError(
            "table net119.users not found: run `net119 migrate` on this database first"
        )
    if replace:
        truncate_tables(conn)
    else:
        existing_users = _count_rows(conn, "users")
        existing_stations = _count_rows(conn, "stations")
        if existing_users or existing_stations:
            conn.rollback()
            raise SeedError(
                f"net119 already contains {existing_stations} stations and "
                f"{existing_users} users; pass --replace (replace=True) to empty "
                "the net119 tables first"
            )

    rng = random.Random(seed)
    station_rows = build_stations(rng, stations)
    user_rng = random.Random(f"{seed}:users")
    special = _special_addresses(user_rng, users)
    rows = generate_user_rows(user_rng, station_rows, users, reference_date, special)
    try:
        _insert_stations(conn, station_rows)
        written = _copy_users(conn, rows)
        with conn.cursor() as cur:
            cur.execute("ANALYZE net119.stations")
            cur.execute("ANALYZE net119.users")
        conn.commit()
    except Exception:
        conn.rollback()
        raise

    legacy = sum(1 for kind in special.values() if kind == "legacy")
    summary = SeedSummary(
        stations=len(station_rows),
        users=written,
        legacy_addresses=legacy,
        invalid_addresses=len(special) - legacy,
        seconds=time.monotonic() - started,
    )
    log.info(
        "Seeded %d stations and %d users (%d pre-2009 addresses, %d invalid) in %.1f s",
        summary.stations,
        summary.users,
        summary.legacy_addresses,
        summary.invalid_addresses,
        summary.seconds,
    )
    return summary


def _parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid date {value!r}: expected YYYY-MM-DD"
        ) from None


def main(argv: list[str] | None = None) -> int:
    """Seed the database named on the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m net119.devtools.seed",
        description="Fill the net119 schema with synthetic stations and users.",
    )
    parser.add_argument(
        "--database-url",
        help=f"libpq URL of the database (default: ${db.DATABASE_URL_ENV})",
    )
    parser.add_argument(
        "--users", type=int, default=DEFAULT_USERS,
        help=f"number of users (default: {DEFAULT_USERS})",
    )
    parser.add_argument(
        "--stations", type=int, default=DEFAULT_STATIONS,
        help=f"number of stations (default: {DEFAULT_STATIONS})",
    )
    parser.add_argument(
        "--date", type=_parse_date,
        help="reference date YYYY-MM-DD that centres the expiry window "
        "(default: today in Asia/Tokyo)",
    )
    parser.add_argument(
        "--seed", type=int, default=0,
        help="random seed; the same seed gives the same population (default: 0)",
    )
    parser.add_argument(
        "--replace", action="store_true",
        help="empty every net119 table (users, stations, reminders, ...) first",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )

    reference_date = args.date or datetime.now(TOKYO).date()
    try:
        conn = db.connect(args.database_url)
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        seed(
            conn,
            users=args.users,
            stations=args.stations,
            reference_date=reference_date,
            seed=args.seed,
            replace=args.replace,
        )
    except (SeedError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
