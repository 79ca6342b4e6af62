"""Tests of the summary that scripts/demo.sh prints after its run."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from net119.devtools.demo import display_width, render_summary


def test_demo_summary_rows_and_mail_count(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    for name in ("00000001.eml", "00000002.eml"):
        (mail_dir / name).write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    (mail_dir / ".smtp-sink.pid").write_text("123\n")
    counts = {
        -90: {"sent": 1200, "skipped": 3},
        180: {"failed": 2},
        None: {"sent": 1},
    }

    text = render_summary(counts, date(2026, 12, 4), mail_dir)
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line}

    assert "2026-12-04" in text
    # Columns: 送信, 不達, 失敗, スキップ, then the row total.
    assert rows["ステップ"] == ["送信", "不達", "失敗", "スキップ", "計"]
    assert rows["90日前"] == ["1,200", "0", "0", "3", "1,203"]
    assert rows["当日"] == ["0", "0", "0", "0", "0"]
    assert rows["180日後"] == ["0", "0", "2", "0", "2"]
    assert rows["手動再送"] == ["1", "0", "0", "0", "1"]
    assert rows["合計"] == ["1,201", "0", "2", "3", "1,206"]
    assert "SMTP シンクに届いたメール: 2 通" in text
    assert str(mail_dir) in text


def test_demo_summary_columns_align() -> None:
    counts = {0: {"sent": 5, "sending": 7}, -10: {"confirmed": 1}}

    text = render_summary(counts, date(2026, 12, 4), Path("/nonexistent"))
    lines = text.splitlines()
    header_index = next(i for i, line in enumerate(lines) if "ステップ" in line)
    # The header, the 13 steps and the total row.
    table = lines[header_index : header_index + 15]

    assert "送信中" in table[0]
    assert "更新済み" in table[0]
    assert table[-1].split()[0] == "合計"
    assert len({display_width(line) for line in table}) == 1
    assert "SMTP シンクに届いたメール: 0 通" in text
