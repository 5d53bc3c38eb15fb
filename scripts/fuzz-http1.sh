#!/usr/bin/env bash
# Fuzzes SluiceHTTP1 (the request and response parsers and the header rewriter) with libFuzzer
# for a bounded time, starting from the seed corpus; fails on any crash or broken invariant.
#
#   FUZZ_SECONDS   how long to fuzz (default 60)
#   NO_BUILD=1     use the binary already in .build-fuzz
#   extra arguments go to libFuzzer (e.g. -max_len=16384)
#
# The build is separate (.build-fuzz) because every module in it is instrumented for libFuzzer
# and AddressSanitizer. It is optimised, as the gateway ships, so many more inputs run in the
# time than in a debug build; preconditions and bounds checks still trap (only their messages
# go: a plain debug build replays an input with them). New inputs libFuzzer finds go to
# .build-fuzz/corpus, never into the committed seeds; a crashing input is saved as
# .build-fuzz/artifacts/crash-*.
set -euo pipefail
cd "$(dirname "$0")/.."

SCRATCH=.build-fuzz
SEEDS=Tests/Fuzz/http1-corpus
if [ "${NO_BUILD:-}" != 1 ]; then
    # -DSLUICE_LIBFUZZER makes the target's main hand over to libFuzzer; lld links the
    # instrumented objects without the thousands of warnings gold prints for them.
    swift build -c release --product sluice-http1-fuzz --scratch-path "$SCRATCH" \
        -Xswiftc -sanitize=fuzzer,address -Xswiftc -DSLUICE_LIBFUZZER -Xswiftc -use-ld=lld
fi
mkdir -p "$SCRATCH/corpus" "$SCRATCH/artifacts"

# Swift's own crash handler would symbolicate interactively and hold the run; libFuzzer and
# AddressSanitizer report crashes themselves.
export SWIFT_BACKTRACE=enable=no
status=0
"$SCRATCH/release/sluice-http1-fuzz" "$SCRATCH/corpus" "$SEEDS" \
    -max_total_time="${FUZZ_SECONDS:-60}" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$SCRATCH/artifacts/" "$@" || status=$?
if [ "$status" -ne 0 ]; then
    echo "fuzz-http1: libFuzzer stopped with status $status; the input is in $SCRATCH/artifacts/:" >&2
    ls -l "$SCRATCH/artifacts/" >&2
    echo "replay it: $SCRATCH/release/sluice-http1-fuzz <file>, or with the failed check's message:" >&2
    echo "  swift build --product sluice-http1-fuzz && .build/debug/sluice-http1-fuzz <file>" >&2
    exit 1
fi
echo "fuzz-http1: no crash in ${FUZZ_SECONDS:-60} s"
