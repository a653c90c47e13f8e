#!/bin/bash
# The C harness behind BENCHMARKS.md's session-8 compiler findings: conv2's weight gradient from
# the conv.pyx of each commit named, with GCC -O3 -march=native, with -fwrapv (Python's CFLAGS)
# and without, three alternating passes.   bash results/bench-xeon-2026-11-30/harness/run.sh
# 6a982b2: before session 8 (no barrier); HEAD: the barrier, and the size dispatch, whose body
# the harness calls directly (BODY) so that run-time sizes stay run-time.
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd); R=$(git -C "$H" rev-parse --show-toplevel); T=$(mktemp -d)
block() {  # the C block of conv.pyx at commit $1, dedented, as a header
    git -C "$R" show "$1:kernels/conv.pyx" | python3 -c '
import sys, textwrap
s = sys.stdin.read(); a = s.index("cdef extern from *:\n    \"\"\"") + 28; print(textwrap.dedent(s[a:s.index("\"\"\"", a)]))'
}
for c in 6a982b2 HEAD; do
    mkdir -p "$T/$c" && block "$c" > "$T/$c/conv_block.h"
    body=hpc_dw_image_olanes5; grep -q hpc_dw_olanes5_body "$T/$c/conv_block.h" && body=hpc_dw_olanes5_body
    for w in -fwrapv -fno-wrapv; do
        gcc -O3 -march=native -ffp-contract=fast $w -DBODY=$body -I"$R/kernels" -I"$T/$c" "$H/conv2_dw.c" -o "$T/$c/dw$w"
    done
done
lscpu | grep -E "Model name|^Model:"; date -u
for pass in 1 2 3; do
    for c in 6a982b2 HEAD; do for w in -fwrapv -fno-wrapv; do
        printf "%-8s %-11s " "$c" "$w"; "$T/$c/dw$w"
    done; done
done
rm -rf "$T"
