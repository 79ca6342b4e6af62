#!/usr/bin/env bash
# Run the daily reminder DAG once on this machine, with nothing to set up.
#
#   scripts/demo.sh [YYYY-MM-DD]
#
# The script creates .venv when it is missing. It starts a PostgreSQL from
# the pgserver wheel (.demo/pg) with a freshly seeded population and an SMTP
# sink that stores every mail as a file (.demo/mail). Then it runs
# `airflow dags test net119_daily_reminders DATE` with a private AIRFLOW_HOME
# (.demo/airflow). DATE defaults to today in Asia/Tokyo. At the end it prints
# the reminders handled per step and where the mails are, and stops both
# servers.
#
# Environment: NET119_DEMO_USERS (default 5000) and NET119_DEMO_STATIONS
# (default 8) set the size of the population. PYTHON names the interpreter
# that creates .venv (default python3, version 3.11 or later).
#
# PostgreSQL comes from the pgserver wheel and the SMTP sink is aiosmtpd. The
# notice letters need a Japanese font and Pango from Debian's packages.
# `scripts/install-system-packages.sh --demo` installs them when the demo runs
# as root or with password-less sudo. Otherwise the reports go out without
# letters.

set -Eeuo pipefail

ROOT=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
DEMO="$ROOT/.demo"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
LOG="$DEMO/demo.log"
USERS="${NET119_DEMO_USERS:-5000}"
STATIONS="${NET119_DEMO_STATIONS:-8}"
SINK_PID=""
DATABASE_STARTED=""

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

step() {
    printf '==> %s\n' "$*"
}

die() {
    printf 'エラー: %s\n' "$*" >&2
    exit 1
}

# Run a command with its output appended to $LOG. On failure print what
# failed, the log's path and its last lines, then exit.
run_logged() {
    local what=$1
    shift
    printf '\n### %s: %s\n' "$what" "$*" >>"$LOG"
    if ! "$@" >>"$LOG" 2>&1; then
        printf 'エラー: %s に失敗しました。ログ: %s\n' "$what" "$LOG" >&2
        printf -- '--- ログの最後の 40 行 ---\n' >&2
        tail -n 40 "$LOG" >&2
        exit 1
    fi
}

cleanup() {
    local status=$?
    if [[ -n "$SINK_PID" ]] && kill -0 "$SINK_PID" 2>/dev/null; then
        kill -TERM "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
    fi
    if [[ -n "$DATABASE_STARTED" ]]; then
        "$PY" -m net119.devtools.demo stop-database --data-dir "$DEMO/pg" \
            >>"$LOG" 2>&1 || true
    fi
    exit "$status"
}

# --- Arguments --------------------------------------------------------------

if [[ $# -gt 1 || "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    usage
    [[ $# -le 1 ]] && exit 0
    exit 2
fi
if [[ $# -eq 1 ]]; then
    RUN_DATE=$1
    if [[ ! "$RUN_DATE" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}$ ]] \
        || [[ "$(date -d "$RUN_DATE" +%F 2>/dev/null)" != "$RUN_DATE" ]]; then
        die "日付 '$RUN_DATE' が不正です。YYYY-MM-DD 形式で指定してください（例: 2026-12-04）。"
    fi
else
    RUN_DATE=$(TZ=Asia/Tokyo date +%F)
fi
[[ "$USERS" =~ ^[0-9]+$ ]] || die "NET119_DEMO_USERS='$USERS' は 0 以上の整数ではありません。"
[[ "$STATIONS" =~ ^[1-9][0-9]*$ ]] || die "NET119_DEMO_STATIONS='$STATIONS' は 1 以上の整数ではありません。"

mkdir -p "$DEMO"
cd "$ROOT"

# Two demos at once would share .demo/pg and .demo/mail.
exec 9>"$DEMO/demo.lock"
flock -n 9 || die "別のデモ（scripts/demo.sh）が実行中です。終わるのを待ってから再実行してください。"

: >"$LOG"
START_SECONDS=$SECONDS
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- Python environment -----------------------------------------------------

step "Python の実行環境を準備しています（初回は約1分）"
run_logged "scripts/setup-venv.sh" bash "$ROOT/scripts/setup-venv.sh"

if [[ $(id -u) -eq 0 ]]; then
    run_logged "install-system-packages.sh --demo" bash "$ROOT/scripts/install-system-packages.sh" --demo
elif sudo -n true 2>/dev/null; then
    run_logged "install-system-packages.sh --demo" sudo -n bash "$ROOT/scripts/install-system-packages.sh" --demo
else
    step "root 権限がないため、案内書（PDF）なしで消防本部レポートを送ります"
    export NET119_REPORT_MAX_LETTERS=0
fi

# platformdirs, used by pgserver, wants a private runtime folder.
mkdir -p "$DEMO/run"
chmod 700 "$DEMO/run"
export XDG_RUNTIME_DIR="$DEMO/run"

# --- PostgreSQL with a fresh population ---------------------------------------

step "PostgreSQL を起動し、データベースを作り直しています（$DEMO/pg）"
# A run killed with SIGKILL leaves its SMTP sink behind, so stop it by its pid.
if [[ -f "$DEMO/smtp-sink.pid" ]]; then
    OLD_PID=$(cat "$DEMO/smtp-sink.pid")
    if [[ "$OLD_PID" =~ ^[0-9]+$ ]] \
        && ps -p "$OLD_PID" -o args= 2>/dev/null | grep -q 'net119.devtools.smtp_sink'; then
        kill -TERM "$OLD_PID" 2>/dev/null || true
    fi
fi
DATABASE_STARTED=1
printf '\n### reset-database\n' >>"$LOG"
DATABASE_URL=$("$PY" -m net119.devtools.demo reset-database --data-dir "$DEMO/pg" 2>>"$LOG") \
    || { tail -n 40 "$LOG" >&2; die "PostgreSQL の起動に失敗しました。ログ: $LOG"; }

step "スキーマを作成しています（net119 migrate）"
run_logged "net119 migrate" "$VENV/bin/net119" migrate --database-url "$DATABASE_URL"

step "利用者 ${USERS} 人・消防本部 ${STATIONS} か所を生成しています（基準日 $RUN_DATE）"
run_logged "seed" "$PY" -m net119.devtools.seed --database-url "$DATABASE_URL" \
    --users "$USERS" --stations "$STATIONS" --date "$RUN_DATE"

# --- SMTP sink --------------------------------------------------------------

step "SMTP シンクを起動しています（$DEMO/mail）"
rm -rf "$DEMO/mail" "$DEMO/smtp-sink.port"
# 2% of addresses are rejected as unknown users, as a carrier would, so the
# run shows 不達 users and the station reports carry notice letters.
"$PY" -m net119.devtools.smtp_sink --dir "$DEMO/mail" --port 0 --reject-percent 2 \
    --pid-file "$DEMO/smtp-sink.pid" --port-file "$DEMO/smtp-sink.port" \
    >"$DEMO/smtp-sink.log" 2>&1 9>&- &
SINK_PID=$!
for _ in $(seq 1 200); do
    [[ -s "$DEMO/smtp-sink.port" ]] && break
    kill -0 "$SINK_PID" 2>/dev/null || break
    sleep 0.1
done
if [[ ! -s "$DEMO/smtp-sink.port" ]]; then
    tail -n 20 "$DEMO/smtp-sink.log" >&2
    die "SMTP シンクが起動しませんでした。ログ: $DEMO/smtp-sink.log"
fi
SMTP_PORT=$(cat "$DEMO/smtp-sink.port")

# --- Airflow ----------------------------------------------------------------

export AIRFLOW_HOME="$DEMO/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=4
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
AIRFLOW_CONN_NET119_DB=$("$PY" -m net119.devtools.demo airflow-conn-uri "$DATABASE_URL")
export AIRFLOW_CONN_NET119_DB
# The smtp provider enables SSL and STARTTLS unless the extras disable them,
# and the sink speaks plain SMTP.
export AIRFLOW_CONN_NET119_SMTP="{\"conn_type\": \"smtp\", \"host\": \"127.0.0.1\", \"port\": $SMTP_PORT, \"extra\": {\"disable_ssl\": true, \"disable_tls\": true}}"

step "Airflow のメタデータベースを準備しています（$AIRFLOW_HOME）"
mkdir -p "$AIRFLOW_HOME/config"
# `airflow dags test` waits out each retry delay, which is minutes in the
# DAG, so a task that keeps failing would hold the demo for half an hour or
# more. This cluster policy, loaded from $AIRFLOW_HOME/config, keeps the
# retries and shortens their delay to 5 s for the demo only.
cat >"$AIRFLOW_HOME/config/airflow_local_settings.py" <<'PYTHON'
"""Airflow cluster policy of scripts/demo.sh: retry failed tasks after 5 s."""

import datetime as dt


def task_policy(task):
    task.retry_delay = dt.timedelta(seconds=5)
    task.retry_exponential_backoff = 0
    task.max_retry_delay = None
PYTHON
# A fresh metadata database each run, like the fresh net119 database, so a
# second run for the same date starts from scratch.
rm -f "$AIRFLOW_HOME/airflow.db"
run_logged "airflow db migrate" "$VENV/bin/airflow" db migrate

step "airflow dags test net119_daily_reminders $RUN_DATE を実行しています"
run_logged "airflow dags test" \
    "$VENV/bin/airflow" dags test net119_daily_reminders "$RUN_DATE"

# --- Summary ----------------------------------------------------------------

echo
"$PY" -m net119.devtools.demo summary --database-url "$DATABASE_URL" \
    --date "$RUN_DATE" --mail-dir "$DEMO/mail" 2>>"$LOG"
echo
echo "Airflow などの詳しいログ: $LOG"
echo "所要時間: $((SECONDS - START_SECONDS)) 秒"
