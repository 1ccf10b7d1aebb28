#!/usr/bin/env bash
# What a person sees: `connect-dev demo` in a real terminal (tmux, 120x40), driven by keys.
#
#   scripts/tui_check.sh            # prints the screen after each step
#   PYTHON=.venv/bin/python scripts/tui_check.sh
#
# Steps: wait for the dashboard to be ready → r (re-install) → save an edited descriptor →
# q (uninstall and quit). Each step prints the captured screen; the last one shows what is left
# on the terminal once the dashboard has closed. Exits non-zero if a step does not show up.
set -euo pipefail

python=${PYTHON:-python3}
command -v tmux >/dev/null || { echo "tui_check: needs tmux (apt-get install tmux)" >&2; exit 2; }

work=$(mktemp -d)
session="connect-dev-check-$$"
cleanup() {
    tmux kill-session -t "$session" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

tmux new-session -d -s "$session" -x 120 -y 40 \
    "$python -m connect_devloop demo --dir '$work/project'; echo \"[exit code \$?]\"; sleep 600"

screen() { tmux capture-pane -p -t "$session"; }

# wait_for TIMEOUT_S GREP_PATTERN: until the screen shows the pattern.
wait_for() {
    local deadline=$((SECONDS + $1))
    until screen | grep -qE -- "$2"; do
        if ((SECONDS >= deadline)); then
            echo "tui_check: timed out waiting for /$2/; the screen is:" >&2
            screen >&2
            exit 1
        fi
        sleep 0.1
    done
}

show() {
    sleep "${2:-0.3}" # let the frame that matched finish drawing (it is written in pieces)
    printf '\n=== %s ===\n' "$1"
    screen
}

wait_for 30 '● ready'
show "ready: every host installed"

tmux send-keys -t "$session" r
wait_for 15 'demo-jira .*✔ installed .* manual '
show "after r: re-installed (reason manual)"

"$python" - "$work/project/atlassian-connect.json" <<'PY'
import json, sys
path = sys.argv[1]
with open(path, encoding="utf-8") as file:
    document = json.load(file)
document["name"] = "Edited by tui_check"
with open(path, "w", encoding="utf-8") as file:
    json.dump(document, file, indent=2)
PY
wait_for 15 'demo-jira .*✔ installed .* saved '
show "after saving the descriptor: re-installed with the new digest (reason saved)"

tmux send-keys -t "$session" q
show "right after q: the teardown, host by host (on loopback it takes a fraction of a second)" 0.1
wait_for 30 '\[exit code [0-9]+\]'
show "after q: the dashboard closed; the teardown lines stay on the terminal"
screen | grep -q '\[exit code 0\]' || { echo "tui_check: non-zero exit" >&2; exit 1; }
