#!/usr/bin/env bash
# Run a command against freshly started local AWS emulators, then stop them.
#
#   scripts/with-services.sh moto|strict -- CMD [ARGS...]
#
# Starts the BACKEND's servers (scripts/services.sh start), runs CMD with the
# endpoint/credential variables exported, and always stops the servers again
# (on success, failure, Ctrl-C or TERM). When CMD fails, the servers' log
# tails are printed and the log dir is kept. Exits with CMD's exit status;
# when interrupted it stops everything and then dies of the same signal, so
# that a calling shell loop (or make) stops too.
#
# CMD runs in its own process group: on INT or TERM the wrapper sends INT to
# that group (as a terminal's Ctrl-C would; `go test` cleans up on it), TERM
# 5 s later and KILL 5 s after that, then stops the servers. CMD reads no
# terminal (stdin is /dev/null then); piped input is passed on.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SERVICES=$ROOT/scripts/services.sh

usage() {
	echo "usage: scripts/with-services.sh moto|strict -- CMD [ARGS...]" >&2
	exit 2
}

(($# >= 3)) || usage
backend=$1
shift
[[ $1 == -- ]] || usage
shift

envfile=$(mktemp "${TMPDIR:-/tmp}/dynoseal-env.XXXXXX") || exit 1
child=
interrupted=
keep_logs=0

# stop_child: end CMD's process group, INT first, then TERM, then KILL.
stop_child() {
	[[ -n $child ]] || return 0
	local i
	for i in $(seq 1 100); do
		kill -0 -- "-$child" 2>/dev/null || break
		((i == 1 && ${#interrupted} == 0)) && kill -INT -- "-$child" 2>/dev/null
		((i == 50)) && kill -TERM -- "-$child" 2>/dev/null
		sleep 0.1
	done
	kill -KILL -- "-$child" 2>/dev/null
	wait "$child" 2>/dev/null
	child=
}

cleanup() {
	trap - INT TERM
	stop_child
	DYNOSEAL_KEEP_LOGS=$keep_logs "$SERVICES" stop "$envfile" || true
	rm -f -- "$envfile"
}
trap cleanup EXIT

# shellcheck disable=SC2317 # invoked from the traps below
on_signal() {
	[[ -n $interrupted ]] && return
	interrupted=$1
	echo "with-services: got SIG$1, stopping" >&2
	if [[ -n $child ]]; then
		kill -INT -- "-$child" 2>/dev/null || true
	fi
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM

# die_by_signal: clean up, then end this shell with the signal it received.
die_by_signal() {
	cleanup
	trap - EXIT INT TERM
	kill -s "$interrupted" "$$"
	# Not reached unless the signal is ignored.
	[[ $interrupted == INT ]] && exit 130
	exit 143
}

"$SERVICES" start "$backend" "$envfile"
rc=$?
[[ -n $interrupted ]] && die_by_signal
((rc == 0)) || exit "$rc"

# shellcheck disable=SC1090
. "$envfile"

# Start CMD in its own process group (job control on just for this launch).
# A terminal stays with the wrapper (a background group reading it would be
# stopped); piped or redirected input is passed on.
set -m
if [[ -t 0 ]]; then
	"$@" </dev/null &
else
	"$@" <&0 &
fi
child=$!
set +m

wait "$child"
rc=$?
if [[ -n $interrupted ]]; then
	echo "with-services: interrupted; stopping $backend services" >&2
	die_by_signal
fi
child=

if ((rc != 0)); then
	echo "with-services: command exited with status $rc on backend $backend" >&2
	for f in "${DYNOSEAL_LOGDIR:-/nonexistent}"/*.log; do
		[[ -s $f ]] || continue
		printf '\n----- last lines of %s -----\n' "$f" >&2
		tail -n 40 "$f" >&2
	done
	echo >&2
	keep_logs=1
	echo "with-services: server logs kept in $DYNOSEAL_LOGDIR" >&2
fi
exit "$rc"
