"""The notice letter PDF: text, page size, fonts and a rendered first page."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import re
from pathlib import Path

import pypdf
import pypdfium2
import pytest
from factories import jst
from net119.reports.letter import NoticeLetter, letter_filename, render_notice_letter

TEMPLATES = Path(__file__).resolve().parents[1] / "include" / "templates"
# A4 in PostScript points (210 mm x 297 mm).
A4 = (595.28, 841.89)

LETTER = NoticeLetter(
    user_id=1042,
    user_name="髙橋 花子",
    email="taro..yamada.@docomo.ne.jp",
    postal_code="231-0023",
    postal_address="神奈川県横浜市中区山下町1-2-3",
    status="lapsed",
    lapse_reason="undeliverable",
    expires_at=jst(2026, 11, 4, 8),
    station_name="横浜市消防局",
    station_phone="045-334-6780",
    station_fax="045-334-6790",
    station_email="net119@yokohama.example.jp",
    station_address="神奈川県横浜市保土ケ谷区川辺町2-9",
    issued_on=dt.date(2026, 12, 4),
    sender_domain="net119.example.jp",
)


def _text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    # Text extraction may break lines anywhere; compare without whitespace.
    return re.sub(r"\s+", "", "".join(page.extract_text() for page in reader.pages))


@pytest.fixture(scope="module")
def letter_pdf() -> bytes:
    return render_notice_letter(LETTER, TEMPLATES)


def test_letter_one_a4_page(letter_pdf) -> None:
    reader = pypdf.PdfReader(io.BytesIO(letter_pdf))

    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert float(box.width) == pytest.approx(A4[0], abs=1)
    assert float(box.height) == pytest.approx(A4[1], abs=1)


def test_letter_text_has_name_and_instructions(letter_pdf) -> None:
    text = _text(letter_pdf)

    for expected in (
        "髙橋花子様",
        "〒231-0023",
        "横浜市消防局",
        "令和8年（2026年）12月4日",
        "定期更新手続きのご案内",
        "有効期限（令和8年（2026年）11月4日8時00分）が過ぎたため",
        "「失効中」",
        "119番の緊急通報と練習通報はこれまでどおり使えます",
        "呼び返しやメールでの連絡ができません",
        "ドコモ（docomo）",
        "「受信リスト設定」にnet119.example.jpを登録してください",
        "au「受信リスト設定」",
        "ソフトバンク（SoftBank）「受信許可リスト」にnet119.example.jpを登録",
        "「更新する」ボタンを押してください",
        "FAX：045-334-6790",
        "電話：045-334-6780",
        "登録メールアドレス：taro..yamada.@docomo.ne.jp",
        "利用者ID：1042",
    ):
        assert expected in text, expected


def test_letter_at_risk_wording() -> None:
    active = dataclasses.replace(
        LETTER, status="active", lapse_reason=None, expires_at=jst(2026, 12, 20, 10)
    )

    text = _text(render_notice_letter(active, TEMPLATES))

    assert "有効期限は令和8年（2026年）12月20日10時00分です" in text
    assert "期限までに手続きをしないと「失効中」になります" in text
    assert "が過ぎたため" not in text


def test_letter_embeds_japanese_font(letter_pdf) -> None:
    reader = pypdf.PdfReader(io.BytesIO(letter_pdf))
    fonts = {
        str(font.get_object()["/BaseFont"])
        for font in reader.pages[0]["/Resources"]["/Font"].values()
    }

    assert any("IPAexGothic" in name for name in fonts), fonts


def test_letter_escapes_markup_in_name() -> None:
    letter = dataclasses.replace(LETTER, user_name="<b>山田</b> & 太郎")

    text = _text(render_notice_letter(letter, TEMPLATES))

    assert "<b>山田</b>&太郎様" in text


def test_letter_first_page_not_blank(letter_pdf, tmp_path) -> None:
    document = pypdfium2.PdfDocument(letter_pdf)
    image = document[0].render(scale=100 / 72).to_pil().convert("L")
    image.save(tmp_path / "letter.png")

    width, height = image.size
    dark = sum(1 for value in image.getdata() if value < 128)
    # At 100 dpi an A4 page is 827 x 1169 pixels; text and rules cover a few percent.
    assert width == 827
    assert abs(height - 1169) <= 1
    assert dark > 0.02 * width * height
    # The top margin above the date stays white.
    top = image.crop((0, 0, width, 40))
    assert min(top.getdata()) > 200


def test_letter_filename_drops_unsafe_characters() -> None:
    letter = dataclasses.replace(LETTER, user_name='山田/太郎:"x"')

    assert letter_filename(letter) == "案内書_1042_山田太郎x.pdf"


def test_letter_command_writes_station_letters(db, db_url, tmp_path) -> None:
    from factories import add_station, add_user
    from net119 import cli, transitions
    from report_helpers import bounce

    add_station(db, "st-yokohama", "横浜市消防局")
    add_user(db, 1, jst(2026, 11, 4, 8), name="山田 太郎")
    bounce(db, 1, jst(2026, 11, 4, 9))
    add_user(db, 2, jst(2026, 11, 4, 8), name="佐藤 花子")
    transitions.apply_expiry_transitions(db, now=jst(2026, 12, 4, 9))
    output = tmp_path / "letters"

    status = cli.main(
        [
            "notice-letters",
            "--station-id",
            "st-yokohama",
            "--output-dir",
            str(output),
            "--date",
            "2026-12-04",
            "--database-url",
            db_url,
        ]
    )

    # User 2 lapsed as 未更新, so only user 1 gets a letter.
    assert status == 0
    assert sorted(p.name for p in output.iterdir()) == ["案内書_1_山田 太郎.pdf"]
    text = _text((output / "案内書_1_山田 太郎.pdf").read_bytes())
    assert "山田太郎様" in text
    assert "令和8年（2026年）12月4日" in text


def test_letter_command_by_user_id(db, db_url, tmp_path) -> None:
    from factories import add_station, add_user
    from net119 import cli

    add_station(db, "st-yokohama", "横浜市消防局")
    add_user(db, 5, jst(2027, 1, 4, 8), name="鈴木 一郎")
    add_user(db, 6, jst(2027, 1, 4, 8), name="田中 二郎")

    status = cli.main(
        [
            "notice-letters",
            "--user-id",
            "6",
            "--output-dir",
            str(tmp_path),
            "--database-url",
            db_url,
        ]
    )

    assert status == 0
    assert [p.name for p in tmp_path.iterdir()] == ["案内書_6_田中 二郎.pdf"]
