#!/usr/bin/env bash
# Run `make test` N times in a row (`make test-repeat N=20`): one line per run with its
# wall time, pytest's exit code, its summary line and the machine's load, then the tally.
# Every exit code but 0 is a failed run (5, "no tests collected", too). Each run's full
# output is kept in $REPEAT_LOG_DIR (default: a new temporary folder) for the failures.
# Exit status: 0 only if every run passed.
set -uo pipefail
cd "$(dirname "$0")/.."

runs="${1:-20}"
case "$runs" in
    '' | *[!0-9]* | 0) echo "usage: $0 N (N >= 1 runs of make test)" >&2; exit 2 ;;
esac
logs="${REPEAT_LOG_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tickscope-repeat-XXXXXX")}"
mkdir -p "$logs"
echo "make test x $runs on $(nproc) CPUs; logs in $logs"

passed=0
failed=0
slowest=0
for i in $(seq 1 "$runs"); do
    log="$logs/run-$i.log"
    load_before="$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')"
    start="$(date +%s.%N)"
    make --no-print-directory test >"$log" 2>&1
    code=$?
    end="$(date +%s.%N)"
    wall="$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')"
    summary="$(grep -E '^=+ .* in [0-9.]+s' "$log" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')"
    [ -n "$summary" ] || summary="(no pytest summary line: see $log)"
    if [ "$code" -eq 0 ]; then
        passed=$((passed + 1)); result="PASS"
    else
        failed=$((failed + 1)); result="FAIL (exit $code)"
    fi
    slowest="$(awk -v a="$slowest" -v b="$wall" 'BEGIN { print (b > a) ? b : a }')"
    printf 'run %2d/%d  %6ss  %-16s load %s  %s\n' "$i" "$runs" "$wall" "$result" "$load_before" "$summary"
done
echo "passed $passed of $runs, failed $failed; slowest run ${slowest}s"
[ "$failed" -eq 0 ]
