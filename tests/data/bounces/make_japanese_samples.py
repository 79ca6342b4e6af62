"""Write the Japanese bounce samples of this folder in their legacy charsets.

The notices are invented in the style of docomo and au mail systems, with
anonymised addresses. The text is kept here in UTF-8 so that it can be read
and changed. Run this script to rewrite the .eml files after a change:

    .venv/bin/python tests/data/bounces/make_japanese_samples.py

Each sample is encoded differently: ISO-2022-JP, Shift_JIS, EUC-JP, and
Shift_JIS bytes under an ISO-2022-JP label (a mislabelled body).
"""

from __future__ import annotations

from email.header import Header
from pathlib import Path

HERE = Path(__file__).resolve().parent

REMINDER_SUBJECT = "【NET119】定期更新手続きのお願い"


def encoded_header(text: str, charset: str) -> str:
    return Header(text, charset).encode()


def write(name: str, headers: str, body: bytes) -> None:
    (HERE / name).write_bytes(headers.encode("ascii") + b"\n" + body)


def au_filtered_iso2022jp() -> None:
    token = "q4va2yk7dn3mxe6s"
    notice = """\
このメールは、auのメールサーバーから自動で送信しています。

お客さまが送信されたメールは、次の宛先に配信できませんでした。
受信者が迷惑メールフィルターの受信リスト設定で送信元のドメインを
許可していないため、受信を拒否されました。

宛先：yuki.sato@au.com
理由：受信者の設定により受信拒否されました
応答：550 5.7.1 Rejected by recipient settings

送信元のドメインからのメールを受信できるよう、受信者の方に
受信リスト設定の確認をご依頼ください。
"""
    original_body = "このメールはNET119の定期更新のご案内です。\n"
    headers = f"""\
Return-Path: <>
Delivered-To: bounce+{token}@net119.example.jp
Received: from mx-in.au.com (mx-in.au.com [192.0.2.101])
\tby mail.net119.example.jp (Postfix) with ESMTPS id 4Xq9U11aBcz6
\tfor <bounce+{token}@net119.example.jp>; Wed,  2 Dec 2026 09:06:10 +0900 (JST)
From: {encoded_header("auメール管理者", "iso-2022-jp")} <postmaster@au.com>
To: bounce+{token}@net119.example.jp
Subject: {encoded_header("メール配信エラーのお知らせ", "iso-2022-jp")}
Date: Wed, 02 Dec 2026 09:06:09 +0900
Message-ID: <20261202090609.NT0001@mx-in.au.com>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="au-notice-0001"
"""
    body = (
        b"--au-notice-0001\n"
        b"Content-Type: text/plain; charset=ISO-2022-JP\n"
        b"Content-Transfer-Encoding: 7bit\n\n"
        + notice.encode("iso-2022-jp")
        + b"\n--au-notice-0001\n"
        b"Content-Type: message/rfc822\n\n"
        + f"""\
Return-Path: <bounce+{token}@net119.example.jp>
MIME-Version: 1.0
Content-Type: text/plain; charset="iso-2022-jp"
Content-Transfer-Encoding: 7bit
Subject: {encoded_header(REMINDER_SUBJECT, "iso-2022-jp")}
From: noreply@net119.example.jp
To: yuki.sato@au.com
Date: Wed, 02 Dec 2026 00:06:05 -0000
Message-ID: <r.20261202.000007.{token}@net119.example.jp>
Auto-Submitted: auto-generated

""".encode("ascii")
        + original_body.encode("iso-2022-jp")
        + b"\n--au-notice-0001--\n"
    )
    write("au_filtered_iso2022jp.eml", headers, body)


def docomo_user_unknown_sjis() -> None:
    token = "r7mb3wc5ju2kqf4x"
    notice = f"""\
ドコモメールからのお知らせです。

お客さまが送信されたメールは、以下の宛先に配信できませんでした。
宛先のメールアドレスが存在しないか、変更されている可能性があります。

送信先メールアドレス：hana.k-0312@docomo.ne.jp
エラー内容：550 Unknown user hana.k-0312@docomo.ne.jp

------------------------------------------------------------
送信されたメールのヘッダー情報
------------------------------------------------------------
Return-Path: <bounce+{token}@net119.example.jp>
Message-ID: <r.20261202.000008.{token}@net119.example.jp>
Date: Wed, 02 Dec 2026 00:07:01 -0000
From: noreply@net119.example.jp
To: hana.k-0312@docomo.ne.jp
Subject: {encoded_header(REMINDER_SUBJECT, "utf-8")}
"""
    headers = f"""\
Return-Path: <>
X-Original-To: bounce+{token}@net119.example.jp
Received: from mfsmax.docomo.ne.jp (mfsmax.docomo.ne.jp [192.0.2.111])
\tby mail.net119.example.jp (Postfix) with ESMTPS id 4Xq9U22bCdz7
\tfor <bounce+{token}@net119.example.jp>; Wed,  2 Dec 2026 09:07:04 +0900 (JST)
From: {encoded_header("ドコモメール", "shift_jis")} <mailer-daemon@docomo.ne.jp>
To: bounce+{token}@net119.example.jp
Subject: {encoded_header("メールを配信できませんでした", "shift_jis")}
Date: Wed, 2 Dec 2026 09:07:03 +0900
Message-ID: <20261202090703.DM0002@mfsmax.docomo.ne.jp>
MIME-Version: 1.0
Content-Type: text/plain; charset=Shift_JIS
Content-Transfer-Encoding: 8bit
"""
    write("docomo_user_unknown_sjis.eml", headers, notice.encode("cp932"))


def au_mailbox_full_eucjp() -> None:
    token = "s2ke6ht4pa7wzn3c"
    notice = f"""\
このメールはauのメールサーバーから自動送信されています。

お客さまが送信されたメールは、受信者のメールボックスの容量が
上限に達しているため配信できませんでした。
一定時間再送を試みましたが、再送を中止しました。

宛先: jiro..suzuki.@ezweb.ne.jp
理由: 552 5.2.2 Mailbox full

--- 送信されたメールのヘッダー ---
Return-Path: <bounce+{token}@net119.example.jp>
Message-ID: <r.20261202.000009.{token}@net119.example.jp>
Date: Wed, 02 Dec 2026 00:08:11 -0000
From: noreply@net119.example.jp
To: jiro..suzuki.@ezweb.ne.jp
"""
    headers = f"""\
Return-Path: <>
Delivered-To: bounce+{token}@net119.example.jp
Received: from mx.ezweb.ne.jp (mx.ezweb.ne.jp [192.0.2.121])
\tby mail.net119.example.jp (Postfix) with ESMTPS id 4Xq9U33cDez8
\tfor <bounce+{token}@net119.example.jp>; Thu,  3 Dec 2026 09:08:20 +0900 (JST)
From: Mail Delivery Subsystem <MAILER-DAEMON@ezweb.ne.jp>
To: bounce+{token}@net119.example.jp
Subject: {encoded_header("メール配信エラーのお知らせ", "euc-jp")}
Date: Thu, 3 Dec 2026 09:08:19 +0900
Message-ID: <20261203090819.EZ0003@mx.ezweb.ne.jp>
MIME-Version: 1.0
Content-Type: text/plain; charset="EUC-JP"
Content-Transfer-Encoding: 8bit
"""
    write("au_mailbox_full_eucjp.eml", headers, notice.encode("euc-jp"))


def docomo_filtered_mislabelled() -> None:
    token = "t5nc2xr7hq3yea6m"
    notice = f"""\
ドコモメールからのお知らせです。

お客さまが送信されたメールは、受信者の迷惑メール設定（受信拒否設定）により
受信を拒否されたため、配信できませんでした。

送信先メールアドレス：kenta_w.@docomo.ne.jp
エラー内容：受信拒否設定により受信が拒否されました
サーバーの応答：550 Unknown user kenta_w.@docomo.ne.jp

------------------------------------------------------------
送信されたメールのヘッダー情報
------------------------------------------------------------
Return-Path: <bounce+{token}@net119.example.jp>
Message-ID: <r.20261202.000010.{token}@net119.example.jp>
Date: Wed, 02 Dec 2026 00:09:30 -0000
From: noreply@net119.example.jp
To: kenta_w.@docomo.ne.jp
"""
    # The body is Shift_JIS although Content-Type declares ISO-2022-JP.
    headers = f"""\
Return-Path: <>
Delivered-To: bounce+{token}@net119.example.jp
Received: from mfsmax.docomo.ne.jp (mfsmax.docomo.ne.jp [192.0.2.112])
\tby mail.net119.example.jp (Postfix) with ESMTPS id 4Xq9U44dEfz9
\tfor <bounce+{token}@net119.example.jp>; Wed,  2 Dec 2026 09:09:34 +0900 (JST)
From: {encoded_header("ドコモメール", "iso-2022-jp")} <mailer-daemon@docomo.ne.jp>
To: bounce+{token}@net119.example.jp
Subject: {encoded_header("メールを配信できませんでした", "iso-2022-jp")}
Date: Wed, 2 Dec 2026 09:09:33 +0900
Message-ID: <20261202090933.DM0004@mfsmax.docomo.ne.jp>
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 8bit
"""
    write("docomo_filtered_mislabelled.eml", headers, notice.encode("cp932"))


def vacation_japanese() -> None:
    token = "u3pd7ma2kx6wrb4e"
    reply = """\
佐藤です。

誠に勝手ながら、12月1日から12月7日まで休暇をいただいております。
期間中にいただいたメールには、12月8日以降に順次返信いたします。

お急ぎの方は、事務所（電話 03-0000-0000）までご連絡ください。
"""
    headers = f"""\
Return-Path: <yumi.sato@example.jp>
Delivered-To: bounce+{token}@net119.example.jp
Received: from mail.example.jp (mail.example.jp [203.0.113.50])
\tby mail.net119.example.jp (Postfix) with ESMTPS id 4Xq9U55eFgzA
\tfor <bounce+{token}@net119.example.jp>; Wed,  2 Dec 2026 09:10:12 +0900 (JST)
From: {encoded_header("佐藤 由美", "iso-2022-jp")} <yumi.sato@example.jp>
To: bounce+{token}@net119.example.jp
Subject: {encoded_header("不在通知: " + REMINDER_SUBJECT, "iso-2022-jp")}
Date: Wed, 2 Dec 2026 09:10:11 +0900
Message-ID: <20261202091011.VC0005@mail.example.jp>
In-Reply-To: <r.20261202.000011.{token}@net119.example.jp>
Precedence: bulk
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-2022-JP
Content-Transfer-Encoding: 7bit
"""
    write("vacation_japanese.eml", headers, reply.encode("iso-2022-jp"))


def main() -> None:
    au_filtered_iso2022jp()
    docomo_user_unknown_sjis()
    au_mailbox_full_eucjp()
    docomo_filtered_mislabelled()
    vacation_japanese()


if __name__ == "__main__":
    main()
