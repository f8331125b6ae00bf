#!/usr/bin/env bash
# Start and stop the local AWS emulators used by the integration tests and the demo.
#
#   scripts/services.sh start BACKEND ENVFILE
#   scripts/services.sh stop ENVFILE
#
# BACKEND:
#   moto    one moto_server serving both DynamoDB and KMS (lax on limits and key states)
#   strict  dynalite (node_modules, strict DynamoDB) + local-kms (bin/localkms, strict KMS)
#
# Every server binds 127.0.0.1 on a free port. `start` writes ENVFILE with
# `export` lines for the standard AWS SDK variables plus DYNOSEAL_BACKEND
# and DYNOTEST_BACKEND (the backend's name, which dynotest reports),
# DYNOSEAL_PIDS (the servers' PIDs), DYNOSEAL_PID_STARTS (their start times,
# so a reused PID is never signalled) and DYNOSEAL_LOGDIR (logs and data).
# `stop` signals exactly those PIDs (TERM, then KILL after a grace period),
# removes DYNOSEAL_LOGDIR unless DYNOSEAL_KEEP_LOGS=1, and removes ENVFILE.
#
# Environment knobs:
#   DYNOSEAL_READY_TIMEOUT  seconds to wait for readiness (default 60)
#   DYNOSEAL_STOP_GRACE     seconds between TERM and KILL on stop (default 5)
#   DYNOSEAL_KMS_LOG_LEVEL  local-kms log level (default info; it is chatty)
#   DYNOSEAL_KEEP_LOGS=1    keep the log dir on stop
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
READY_TIMEOUT=${DYNOSEAL_READY_TIMEOUT:-60}
STOP_GRACE=${DYNOSEAL_STOP_GRACE:-5}
REGION=us-east-1

log() { printf 'services: %s\n' "$*" >&2; }
die() {
	log "$*"
	exit 1
}

usage() {
	cat >&2 <<'EOF'
usage: scripts/services.sh start moto|strict ENVFILE
       scripts/services.sh stop ENVFILE
EOF
	exit 2
}

# quote VALUE for a POSIX shell, in single quotes.
quote() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

# free_ports N: print N distinct free TCP ports on 127.0.0.1.
free_ports() {
	python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

# start_time PID: the process start time (jiffies since boot), or empty.
start_time() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	# Fields after the command name, which is in parentheses and may hold spaces.
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	printf '%s' "${20:-}"
}

# alive PID [START]: true if PID runs, is not a zombie, and (when START is
# given and /proc is available) started at START.
alive() {
	local pid=$1 want=${2:-} stat state
	kill -0 "$pid" 2>/dev/null || return 1
	if [[ -r /proc/$pid/stat ]]; then
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
		stat=${stat##*) }
		state=${stat%% *}
		[[ $state == Z ]] && return 1
		if [[ -n $want ]]; then
			[[ $(start_time "$pid") == "$want" ]] || return 1
		fi
	fi
	return 0
}

# kill_pids "PIDS" "STARTS": TERM, wait up to STOP_GRACE seconds, then KILL.
kill_pids() {
	local -a pids starts
	read -r -a pids <<<"${1:-}"
	read -r -a starts <<<"${2:-}"
	local i pid left deadline
	for i in "${!pids[@]}"; do
		pid=${pids[$i]}
		if alive "$pid" "${starts[$i]:-}"; then
			kill -TERM "$pid" 2>/dev/null || true
			log "sent TERM to pid $pid"
		else
			log "pid $pid is not running (or is now another process): left alone"
		fi
	done
	deadline=$((SECONDS + STOP_GRACE))
	while :; do
		left=
		for i in "${!pids[@]}"; do
			if alive "${pids[$i]}" "${starts[$i]:-}"; then left+=" ${pids[$i]}"; fi
		done
		[[ -z $left ]] && return 0
		((SECONDS >= deadline)) && break
		sleep 0.1
	done
	log "still running after ${STOP_GRACE}s, sending KILL to:$left"
	for i in "${!pids[@]}"; do
		if alive "${pids[$i]}" "${starts[$i]:-}"; then kill -KILL "${pids[$i]}" 2>/dev/null || true; fi
	done
}

print_log_tails() {
	local dir=$1 f
	[[ -d $dir ]] || return 0
	for f in "$dir"/*.log; do
		[[ -s $f ]] || continue
		printf '\n----- last lines of %s -----\n' "$f" >&2
		tail -n "${2:-40}" "$f" >&2 || true
	done
	printf '\n' >&2
}

# ---------------------------------------------------------------- start

PIDS=()
STARTS=()
LOGDIR=

# Called when start fails or is interrupted: show logs, stop what we started.
abort_start() {
	local rc=$?
	trap - EXIT INT TERM
	((rc == 0)) && rc=1
	if ((rc == 130 || rc == 143)); then
		log "start interrupted; stopping what was started"
		kill_pids "${PIDS[*]:-}" "${STARTS[*]:-}"
		[[ -n $LOGDIR ]] && rm -rf -- "$LOGDIR"
		exit "$rc"
	fi
	log "start failed; stopping what was started"
	print_log_tails "$LOGDIR"
	kill_pids "${PIDS[*]:-}" "${STARTS[*]:-}"
	if [[ -n $LOGDIR ]]; then log "logs kept in $LOGDIR"; fi
	exit "$rc"
}

# launch NAME CMD...: run CMD in the background with its output in $LOGDIR/NAME.log.
launch() {
	local name=$1
	shift
	"$@" >"$LOGDIR/$name.log" 2>&1 </dev/null &
	local pid=$!
	PIDS+=("$pid")
	STARTS+=("$(start_time "$pid")")
	log "started $name (pid $pid)"
	LAST_PID=$pid
}

# wait_ready NAME PID URL: poll URL until it answers 2xx, the process dies, or time runs out.
wait_ready() {
	local name=$1 pid=$2 url=$3
	local deadline=$((SECONDS + READY_TIMEOUT))
	while :; do
		if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then
			log "$name ready at ${url%/*}"
			return 0
		fi
		if ! alive "$pid"; then
			log "$name (pid $pid) exited before it was ready"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "$name not ready after ${READY_TIMEOUT}s ($url)"
			return 1
		fi
		sleep 0.2
	done
}

cmd_start() {
	local backend=$1 envfile=$2
	case $backend in
	moto | strict) ;;
	*)
		log "unknown backend '$backend' (want moto or strict)"
		usage
		;;
	esac
	command -v curl >/dev/null || die "curl is required"
	command -v python3 >/dev/null || die "python3 is required"

	trap abort_start EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/dynoseal-services.XXXXXX")
	local ddb_url kms_url

	case $backend in
	moto)
		command -v moto_server >/dev/null ||
			die "moto_server not found on PATH (it comes with Python's moto[server])"
		local port
		port=$(free_ports 1)
		launch moto moto_server -H 127.0.0.1 -p "$port"
		wait_ready moto "$LAST_PID" "http://127.0.0.1:$port/moto-api/"
		ddb_url=http://127.0.0.1:$port
		kms_url=http://127.0.0.1:$port
		;;
	strict)
		local dynalite=$ROOT/node_modules/dynalite/cli.js
		[[ -f $dynalite ]] || die "$dynalite not found: run 'make deps' (npm ci) first"
		command -v node >/dev/null || die "node is required for dynalite"
		log "building bin/localkms"
		mkdir -p "$ROOT/bin"
		if ! (cd "$ROOT/tests" && go build -o "$ROOT/bin/localkms" ./cmd/localkms) >"$LOGDIR/build.log" 2>&1; then
			die "building tests/cmd/localkms failed (see $LOGDIR/build.log)"
		fi
		local ports ddb_port kms_port
		ports=$(free_ports 2)
		read -r ddb_port kms_port <<<"$ports"
		launch dynalite node "$dynalite" --host 127.0.0.1 --port "$ddb_port" \
			--createTableMs 50 --deleteTableMs 50 --updateTableMs 50
		local dynalite_pid=$LAST_PID
		launch localkms "$ROOT/bin/localkms" -port "$kms_port" -data "$LOGDIR/kms-data" \
			-region "$REGION" -account 111122223333 -log-level "${DYNOSEAL_KMS_LOG_LEVEL:-info}"
		local kms_pid=$LAST_PID
		wait_ready dynalite "$dynalite_pid" "http://127.0.0.1:$ddb_port/"
		wait_ready localkms "$kms_pid" "http://127.0.0.1:$kms_port/health"
		ddb_url=http://127.0.0.1:$ddb_port
		kms_url=http://127.0.0.1:$kms_port
		;;
	esac

	local tmp=$envfile.tmp.$$
	{
		echo "# written by scripts/services.sh start $backend; stop with: scripts/services.sh stop $(quote "$envfile")"
		echo "export AWS_ENDPOINT_URL_DYNAMODB=$(quote "$ddb_url")"
		echo "export AWS_ENDPOINT_URL_KMS=$(quote "$kms_url")"
		echo "export AWS_ACCESS_KEY_ID='test'"
		echo "export AWS_SECRET_ACCESS_KEY='test'"
		echo "export AWS_REGION='$REGION'"
		echo "export AWS_DEFAULT_REGION='$REGION'"
		echo "unset AWS_SESSION_TOKEN AWS_PROFILE AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
		echo "export DYNOSEAL_BACKEND=$(quote "$backend")"
		echo "export DYNOTEST_BACKEND=$(quote "$backend")"
		echo "export DYNOSEAL_PIDS=$(quote "${PIDS[*]}")"
		echo "export DYNOSEAL_PID_STARTS=$(quote "${STARTS[*]}")"
		echo "export DYNOSEAL_LOGDIR=$(quote "$LOGDIR")"
	} >"$tmp"
	mv "$tmp" "$envfile"

	trap - EXIT INT TERM
	log "$backend ready: dynamodb $ddb_url, kms $kms_url, logs $LOGDIR"
}

# ---------------------------------------------------------------- stop

cmd_stop() {
	local envfile=$1
	if [[ ! -s $envfile ]]; then
		log "env file $envfile is missing or empty: nothing to stop"
		return 0
	fi
	local pids starts logdir
	# Read the values in a subshell so the env file cannot change this shell.
	pids=$(
		# shellcheck disable=SC1090
		. "$envfile"
		printf '%s' "${DYNOSEAL_PIDS:-}"
	)
	starts=$(
		# shellcheck disable=SC1090
		. "$envfile"
		printf '%s' "${DYNOSEAL_PID_STARTS:-}"
	)
	logdir=$(
		# shellcheck disable=SC1090
		. "$envfile"
		printf '%s' "${DYNOSEAL_LOGDIR:-}"
	)
	kill_pids "$pids" "$starts"
	if [[ -n $logdir && -d $logdir ]]; then
		if [[ ${DYNOSEAL_KEEP_LOGS:-0} == 1 ]]; then
			log "logs kept in $logdir"
		elif [[ $logdir == "${TMPDIR:-/tmp}"/dynoseal-services.* || $logdir == */dynoseal-services.* ]]; then
			rm -rf -- "$logdir"
		fi
	fi
	rm -f -- "$envfile"
}

# ---------------------------------------------------------------- main

(($# >= 1)) || usage
case $1 in
start)
	(($# == 3)) || usage
	envfile=$3
	[[ $envfile == /* ]] || envfile=$PWD/$envfile
	cmd_start "$2" "$envfile"
	;;
stop)
	(($# == 2)) || usage
	cmd_stop "$2"
	;;
-h | --help | help) usage ;;
*) usage ;;
esac
