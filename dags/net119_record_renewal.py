"""
### NET119 recorded renewal (電話・FAX・郵送で確認した定期更新の記録)

Records the renewal (定期更新手続き) of users who informed the station by
phone, FAX or post that they continue, because they could not use the renewal
link.
It counts like a renewal through the link. The validity ends one calendar year
after the later of the current expiry and the time of the run. The user is
利用中 (`active`) again whatever the status was, and a new reminder cycle
starts. No schedule: trigger it with **Trigger** in the Airflow UI or through
the REST API (`docs/manual-resend.md`).

| field | form label | meaning |
| --- | --- | --- |
| `user_ids` | 利用者ID | 1 to 1000 user ids, one per line |
| `renewal_via` | 確認方法 | `phone` 電話, `fax` FAX or `post` 郵送 |
| `note` | 確認の内容（必須） | what was confirmed, at least 5 characters |
| `force` | 更新時期前の利用者も更新する | renew although no renewal is due |
| `dry_run` | 確認のみ（記録しない） | check and report only: nothing is changed |

1. **migrate_schema** brings the `net119` schema up to date.
2. **validate_request** checks every field and fails without retrying when a
   value is bad, naming every bad value in the log. Nothing is changed then.
3. **record_renewals** renews the users in one transaction and records each
   renewal in `net119.renewals` with `via`, `recorded_by` (the Airflow user who
   triggered the run), the note and the run id, and a status event for each
   lapsed user made active. It returns the summary by user id.

A renewal always adds a year, so an active user whose validity ends more than
90 days after the run date (no reminder is due yet: the user has just renewed)
is refused unless `force` is on. A retry of the task never renews a user twice.

Connection: `net119_db` (PostgreSQL).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, get_current_context, task
from net119.recorded_renewal import CONFIRMATION_CHANNELS
from net119.staff_requests import (
    MAX_TEXT_LENGTH,
    MAX_USERS,
    MIN_TEXT_LENGTH,
    USER_IDS_ITEM_SCHEMA,
)

default_args = {
    "owner": "net119",
    # Validation errors fail at once; retries are for database outages.
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
            "更新を記録する利用者のIDを、1行に1人ずつ数字で入力してください"
            "（例：1行目に 1024、2行目に 2048）。1行にカンマ区切りで並べても"
            f"構いません。1回に{MAX_USERS}人まで指定できます。空欄では実行できません。"
        ),
        section="対象の利用者",
    ),
    "renewal_via": Param(
        type="string",
        enum=list(CONFIRMATION_CHANNELS),
        values_display={"phone": "電話", "fax": "FAX", "post": "郵送"},
        title="確認方法",
        description="利用者から更新の申し出を受けた方法を選んでください。",
        section="対象の利用者",
    ),
    "note": Param(
        type="string",
        minLength=MIN_TEXT_LENGTH,
        maxLength=MAX_TEXT_LENGTH,
        title="確認の内容（必須）",
        description=(
            "例：「12月4日、本人からFAXで更新の申し出あり」。"
            "実行したユーザー名とともに更新の記録に残ります。"
            f"{MIN_TEXT_LENGTH}文字以上で入力してください。"
        ),
        section="記録",
    ),
    "force": Param(
        False,
        type="boolean",
        title="更新時期前の利用者も更新する",
        description=(
            "有効期限まで90日を超える利用中の利用者は、すでに更新済みとみなして"
            "記録しません（更新のたびに有効期限が1年延びるため）。"
            "それでも更新するときだけオンにしてください。"
        ),
        section="オプション",
    ),
    "dry_run": Param(
        False,
        type="boolean",
        title="確認のみ（記録しない）",
        description=(
            "オンにすると入力内容を確認し、更新する予定の利用者を結果に表示するだけで、"
            "データは変更しません。"
        ),
        section="オプション",
    ),
}


@dag(
    dag_id="net119_record_renewal",
    description="電話・FAX・郵送で確認した利用者の定期更新を記録します",
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
def net119_record_renewal():
    @task
    def migrate_schema() -> list[int]:
        from net119 import migrate, runtime

        with runtime.database() as conn:
            return migrate.migrate(conn)

    @task
    def validate_request() -> dict[str, object]:
        from airflow.sdk.exceptions import AirflowFailException
        from net119 import recorded_renewal, runtime
        from net119.staff_requests import RequestValidationError

        context = get_current_context()
        with runtime.database() as conn:
            try:
                request = recorded_renewal.validate_request(conn, context["params"])
            except RequestValidationError as exc:
                raise AirflowFailException(str(exc)) from exc
        return {
            "user_ids": list(request.user_ids),
            "duplicates_ignored": list(request.duplicate_ids),
            "via": request.via,
            "force": request.force,
            "dry_run": request.dry_run,
        }

    @task
    def record_renewals() -> dict[str, object]:
        from airflow.sdk.exceptions import AirflowFailException
        from net119 import recorded_renewal, runtime, staff_requests
        from net119.staff_requests import RequestValidationError

        context = get_current_context()
        with runtime.database() as conn:
            try:
                request = recorded_renewal.validate_request(conn, context["params"])
            except RequestValidationError as exc:
                raise AirflowFailException(str(exc)) from exc
            summary = recorded_renewal.record_renewals(
                conn,
                request,
                now=runtime.reference_time(context),
                run_id=context["dag_run"].run_id,
                recorded_by=staff_requests.requester_name(context["dag_run"]),
            )
        return summary.as_dict()

    migrate_schema() >> validate_request() >> record_renewals()


net119_record_renewal()
