#!/bin/sh
# fuzz.sh runs every fuzz target of the module (func FuzzXxx in a
# *_test.go file) for FUZZTIME each, one target at a time, as `go test
# -fuzz` requires. The default, a few seconds, suits `make test`; for a
# real search run e.g. `FUZZTIME=2m scripts/fuzz.sh`, or one package:
# `scripts/fuzz.sh ./oauth`. A failing input is written to the package's
# testdata/fuzz/FuzzXxx/ directory: keep it there as a seed once fixed.
set -eu
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-4s}
# Minimizing a new input can take far longer than the run itself.
MINIMIZE=${FUZZMINIMIZETIME:-5s}

if [ "$#" -gt 0 ]; then
	dirs="$*"
else
	dirs=$(grep -rl --include='*_test.go' --exclude-dir=node_modules --exclude-dir=.git '^func Fuzz' . |
		xargs -n1 dirname | sort -u)
fi

n=0
for dir in $dirs; do
	targets=$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$dir"/*_test.go | sort -u)
	for target in $targets; do
		echo "fuzz: $dir $target for $FUZZTIME"
		$GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$MINIMIZE" "$dir"
		n=$((n + 1))
	done
done
if [ "$n" -eq 0 ]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi
echo "fuzz: $n targets passed"
