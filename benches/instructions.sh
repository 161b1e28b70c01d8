#!/usr/bin/env bash
# Instructions per add(2, 3) round trip, client and server machines together,
# counted by callgrind (repeatable whatever else the machine is doing):
# the difference between a run of 2N calls and a run of N calls, divided by N,
# so start-up cost drops out. Prints `instructions_per_call=<n>`.
#
# Usage: benches/instructions.sh [N]     (default 1000; needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-1000}"
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind" >&2; exit 2; }

bin=$(cargo bench --quiet --bench add_loop --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("executable") and m.get("target", {}).get("name") == "add_loop":
        print(m["executable"])')

count() { # total instructions of one run of $1 calls
  local out; out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" "$1" >/dev/null 2>&1
  awk '/^summary:/ { print $2 }' "$out"
  rm -f "$out"
}
one=$(count "$n")
two=$(count "$((2 * n))")
echo "calls=$n instructions_n=$one instructions_2n=$two"
echo "instructions_per_call=$(( (two - one) / n ))"
