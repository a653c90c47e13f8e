#!/bin/bash
# Session 9's C harness (BENCHMARKS.md, "Session 9"): conv.pyx's hpc_fwd_planes at c546190 (session
# 8's last commit) against HEAD on conv1's forward and conv2's input gradient, GCC -O3
# -march=native -fno-wrapv -ffp-contract=fast as setup.py builds it.
#   bash results/bench-xeon-2026-11-30/harness9/run.sh [OLD_COMMIT]
set -euo pipefail
H=$(cd "$(dirname "$0")" && pwd); R=$(git -C "$H" rev-parse --show-toplevel); T=$(mktemp -d)
OLD=${1:-c546190}
block() {  # the C block of conv.pyx at commit $1, dedented, as a header
    git -C "$R" show "$1:kernels/conv.pyx" | python3 -c '
import sys, textwrap
s = sys.stdin.read(); a = s.index("cdef extern from *:\n    \"\"\"") + 28; print(textwrap.dedent(s[a:s.index("\"\"\"", a)]))'
}
F="-O3 -march=native -fno-wrapv -ffp-contract=fast -I$R/kernels"
for side in old new; do
    c=$OLD; [ $side = new ] && c=HEAD
    mkdir -p "$T/$side" && block "$c" > "$T/$side/conv_block.h"
    gcc $F -I"$T/$side" -DPLANES=${side}_planes -DPAD_ROWS=${side}_pad_rows -c "$H/planes.c" -o "$T/$side.o" 2>/dev/null
done
gcc $F "$H/time_planes.c" "$T/old.o" "$T/new.o" -o "$T/time_planes"
lscpu | grep -E "Model name|^Model:"; date -u; echo "old = $OLD, new = $(git -C "$R" rev-parse --short HEAD)"
"$T/time_planes"
# Where conv1's 16-image backward pass spends its time (HEAD's kernel, clock reads between parts).
mkdir -p "$T/p" && block HEAD > "$T/p/conv_block.h" && python3 "$H/profile_bwd1.py" < "$T/p/conv_block.h" > "$T/p/prof_body.h"
gcc $F -I"$T/p" "$H/profile_bwd1.c" -o "$T/p/profile_bwd1" 2>/dev/null
"$T/p/profile_bwd1"
rm -rf "$T"
