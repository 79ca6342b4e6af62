"""
### NET119 manual resend (リマインダーメールの手動再送信)

Resends the renewal request 「定期更新手続きのお願い」 to the users entered in the
form, in any state and however long after expiry. Automatic mail stops 180 days
after expiry. A user whose mail did not arrive (不達) is mailed again once the
station has confirmed the address by FAX or post. No schedule: trigger it with
**Trigger** in the Airflow UI or through the REST API (`docs/manual-resend.md`).

| field | form label | meaning |
| --- | --- | --- |
| `user_ids` | 利用者ID | 1 to 1000 user ids, one per line |
| `corrected_email` | 訂正後のメールアドレス（任意） | new address of one user |
| `reason` | 再送信の理由（必須） | why, at least 5 characters |
| `force` | 短時間の再送信を許可する | mail again within the window |
| `dry_run` | 確認のみ（送信しない） | report only, change and send nothing |

1. **migrate_schema** brings the `net119` schema up to date.
2. **validate_request** checks every field and fails without retrying when a
   value is bad, naming every bad value in the log. Nothing is changed then.
3. **resend_reminders** writes a corrected address first (with an audit row in
   `net119.address_changes`), claims one ledger row per user (`kind = 'manual'`,
   no offset, `requested_by` = the Airflow user who triggered the run,
   `request_reason` = the reason), sends, and records each outcome. It returns
   the summary by user id: sent, undeliverable, failed, refused and why.

A manual resend to the same user within `NET119_RESEND_WINDOW_MINUTES` (default
10) is refused unless `force` is on, so a double submit mails once. A retry of
the task never mails a user twice: it resends only the mails of this run that
failed temporarily, with the same Message-ID.

Renewals that a station confirmed by phone, FAX or post are recorded by the
separate DAG `net119_record_renewal`, whose form has different fields.

Connections: `net119_db` (PostgreSQL) and `net119_smtp` (SMTP).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, get_current_context, task
from net119.staff_requests import (
    MAX_TEXT_LENGTH,
    MAX_USERS,
    MIN_TEXT_LENGTH,
    USER_IDS_ITEM_SCHEMA,
)

default_args = {
    "owner": "net119",
    # Validation errors fail at once; retries are for database or SMTP outages.
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=2),
    "execution_timeout": dt.timedelta(minutes=30),
}

params = {
    # Integers from the REST API, or lines of digits from the form's text box.
    "user_ids": Param(
        type="array",
        items=USER_IDS_ITEM_SCHEMA,
        minItems=1,
        maxItems=MAX_USERS,
        title="利用者ID",
        description=(
            "再送信する利用者のIDを、1行に1人ずつ数字で入力してください"
            "（例：1行目に 1024、2行目に 2048）。1行にカンマ区切りで並べても"
            f"構いません。1回に{MAX_USERS}人まで指定できます。"
            "同じIDを2回書いても送信は1通です。空欄では実行できません。"
        ),
        section="対象の利用者",
    ),
    "corrected_email": Param(
        None,
        type=["null", "string"],
        maxLength=254,
        title="訂正後のメールアドレス（任意）",
        description=(
            "FAXや郵送で確認した新しいメールアドレスです。入力すると、送信の前に"
            "利用者のメールアドレスをこのアドレスに書き換え、変更の記録を残してから"
            "送信します。利用者IDが1人のときだけ指定できます。"
            "変更しないときは空欄のままにしてください。"
        ),
        section="対象の利用者",
    ),
    "reason": Param(
        type="string",
        minLength=MIN_TEXT_LENGTH,
        maxLength=MAX_TEXT_LENGTH,
        title="再送信の理由（必須）",
        description=(
            "例：「FAXでメールアドレスを確認したため再送信」。"
            "実行したユーザー名とともにリマインダー履歴に記録されます。"
            f"{MIN_TEXT_LENGTH}文字以上で入力してください。"
        ),
        section="記録",
    ),
    "force": Param(
        False,
        type="boolean",
        title="短時間の再送信を許可する",
        description=(
            "同じ利用者に一定時間（標準は10分）以内に手動で再送信していると、"
            "二重送信を防ぐため送信しません。意図してもう一度送るときだけ"
            "オンにしてください。"
        ),
        section="オプション",
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="確認のみ（送信しない）",
        description=(
            "オンにすると入力内容を確認し、送信する予定の利用者を結果に表示するだけで、"
            "メールの送信もデータの変更もしません。"
        ),
        section="オプション",
    ),
}


@dag(
    dag_id="net119_manual_resend",
    description="リマインダーメール「定期更新手続きのお願い」を指定した利用者に手動で再送信します",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    # Triggered runs of a paused DAG wait forever; this DAG only runs when asked.
    is_paused_upon_creation=False,
    default_args=default_args,
    params=params,
    tags=["net119", "manual"],
    doc_md=__doc__,
)
def net119_manual_resend():
    @task
    def migrate_schema() -> list[int]:
        from net119 import migrate, runtime

        with runtime.database() as conn:
            return migrate.migrate(conn)

    @task
    def validate_request() -> dict[str, object]:
        from airflow.sdk.exceptions import AirflowFailException
        from net119 import resend, runtime
        from net119.staff_requests import RequestValidationError

        context = get_current_context()
        with runtime.database() as conn:
            try:
                request = resend.validate_request(conn, context["params"])
            except RequestValidationError as exc:
                raise AirflowFailException(str(exc)) from exc
        return {
            "user_ids": list(request.user_ids),
            "duplicates_ignored": list(request.duplicate_ids),
            "corrects_address": request.corrected_email is not None,
            "force": request.force,
            "dry_run": request.dry_run,
        }

    @task
    def resend_reminders() -> dict[str, object]:
        from airflow.sdk.exceptions import AirflowFailException
        from net119 import resend, runtime, staff_requests
        from net119.config import Settings
        from net119.staff_requests import RequestValidationError

        context = get_current_context()
        with runtime.database() as conn:
            # Parsed again from the params: the corrected address is personal
            # data and does not travel through XCom.
            try:
                request = resend.validate_request(conn, context["params"])
            except RequestValidationError as exc:
                raise AirflowFailException(str(exc)) from exc
            summary = resend.resend(
                conn,
                runtime.smtp_session,
                request,
                now=runtime.reference_time(context),
                run_date=runtime.run_date(context),
                run_id=context["dag_run"].run_id,
                requested_by=staff_requests.requester_name(context["dag_run"]),
                settings=Settings.from_env(),
                window_minutes=resend.window_minutes_from_env(),
            )
        summary.raise_for_temporary_failures()
        return summary.as_dict()

    migrate_schema() >> validate_request() >> resend_reminders()


net119_manual_resend()
