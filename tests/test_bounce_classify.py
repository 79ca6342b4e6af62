"""Tests of the classify command, run as a subprocess like an operator runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from net119.bounces import MAX_BOUNCE_BYTES

ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = ROOT / "tests" / "data" / "bounces"
SAMPLE_FILES = sorted(SAMPLES_DIR.glob("*.eml"))
RECIPIENT_KEYS = (
    "recipient",
    "original_recipient",
    "action",
    "status",
    "smtp_code",
    "diagnostic",
    "category",
    "final_failure",
)


def run_classify(
    *arguments: str, timeout: float = 300
) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "plugins"), LANG="C")
    return subprocess.run(
        [sys.executable, "-m", "net119.bounces.classify", *arguments],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def json_lines(stdout: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.decode("utf-8").splitlines()]


def expected_for(path: Path) -> dict[str, Any]:
    expected_path = path.with_name(path.stem + ".expected.json")
    expected: dict[str, Any] = json.loads(expected_path.read_text("utf-8"))
    return expected


def test_classify_all_samples() -> None:
    result = run_classify(*(str(path) for path in SAMPLE_FILES))

    assert result.returncode == 0, result.stderr.decode()
    documents = json_lines(result.stdout)
    assert [document["path"] for document in documents] == [
        str(p) for p in SAMPLE_FILES
    ]
    for path, document in zip(SAMPLE_FILES, documents, strict=False):
        expected = expected_for(path)
        assert document["error"] is None, path.name
        assert document["kind"] == expected["kind"], path.name
        assert document["verp_token"] == expected["verp_token"], path.name
        assert document["message_id"] == expected["message_id"], path.name
        assert document["quarantine_reason"] == expected["quarantine_reason"], path.name
        assert len(document["recipients"]) == len(expected["recipients"]), path.name
        for actual, expected_recipient in zip(
            document["recipients"], expected["recipients"], strict=False
        ):
            for key in RECIPIENT_KEYS:
                assert actual[key] == expected_recipient[key], f"{path.name} {key}"


def test_classify_keeps_japanese_unescaped() -> None:
    result = run_classify(str(SAMPLES_DIR / "au_filtered_iso2022jp.eml"))

    assert "受信拒否".encode() in result.stdout
    assert b"\\u" not in result.stdout


def test_classify_bad_files_continue(tmp_path: Path) -> None:
    oversized = tmp_path / "oversized.eml"
    with oversized.open("wb") as file:
        file.write(b"From: MAILER-DAEMON@example.com\n\n")
        file.truncate(MAX_BOUNCE_BYTES + 1)
    missing = tmp_path / "missing.eml"
    good = SAMPLES_DIR / "postfix_user_unknown.eml"

    result = run_classify(str(oversized), str(missing), str(tmp_path), str(good))

    assert result.returncode == 1
    documents = json_lines(result.stdout)
    assert len(documents) == 4
    assert documents[0]["quarantine_reason"] == "oversized"
    assert "larger than the limit" in documents[0]["error"]
    assert documents[0]["kind"] is None
    assert "No such file" in documents[1]["error"]
    assert "directory" in documents[2]["error"]
    assert documents[3]["error"] is None
    assert documents[3]["kind"] == "dsn"


def test_classify_max_bytes_option() -> None:
    good = SAMPLES_DIR / "postfix_user_unknown.eml"

    result = run_classify("--max-bytes", "100", str(good))

    assert result.returncode == 1
    assert json_lines(result.stdout)[0]["quarantine_reason"] == "oversized"


def test_classify_fifo_is_error_line(tmp_path: Path) -> None:
    fifo = tmp_path / "bounce.fifo"
    os.mkfifo(fifo)
    good = SAMPLES_DIR / "postfix_user_unknown.eml"

    # Opening a FIFO without a writer blocks, so a hang fails by the timeout.
    result = run_classify(str(fifo), str(good), timeout=60)

    assert result.returncode == 1
    documents = json_lines(result.stdout)
    assert len(documents) == 2
    assert documents[0]["path"] == str(fifo)
    assert "not a regular file but a FIFO" in documents[0]["error"]
    assert documents[0]["kind"] is None
    assert documents[0]["recipients"] == []
    assert documents[1]["error"] is None
    assert documents[1]["kind"] == "dsn"


def test_classify_device_is_error_line() -> None:
    result = run_classify("/dev/null", timeout=60)

    assert result.returncode == 1
    [document] = json_lines(result.stdout)
    assert "not a regular file but a device" in document["error"]


@pytest.mark.parametrize("value", ["0", "-1", "ten"])
def test_classify_invalid_max_bytes_rejected(value: str) -> None:
    good = SAMPLES_DIR / "postfix_user_unknown.eml"

    result = run_classify(f"--max-bytes={value}", str(good))

    assert result.returncode == 2
    assert result.stdout == b""
    stderr = result.stderr.decode()
    assert "--max-bytes" in stderr
    assert f"invalid value {value!r}" in stderr or f"invalid value {value}:" in stderr


def test_classify_without_files_is_usage_error() -> None:
    result = run_classify()

    assert result.returncode == 2
    assert result.stdout == b""


def test_classify_hundreds_of_files(tmp_path: Path) -> None:
    copies = []
    for index in range(300):
        source = SAMPLE_FILES[index % len(SAMPLE_FILES)]
        copy = tmp_path / f"{index:03d}_{source.name}"
        shutil.copyfile(source, copy)
        copies.append(copy)

    started = time.monotonic()
    result = run_classify(*(str(path) for path in copies))
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr.decode()
    documents = json_lines(result.stdout)
    assert len(documents) == 300
    assert all(document["error"] is None for document in documents)
    # Generous bound for a shared 2-core machine; it takes about a second.
    assert elapsed < 60
