"""Writes prof_body.h: conv.pyx's hpc_bwd1_group16 (from the header on stdin) as prof_bwd1, with
clock reads between its parts (pixel transposition, pooled-gradient transposition, the per-row
pre-pool gradient builds, and the rows loop as a whole); profile_bwd1.c times them."""
import sys

s = sys.stdin.read()
a = s.index("static void hpc_bwd1_group16(")
body = s[a:s.index("#else", a)].replace("static void hpc_bwd1_group16(", "static void prof_bwd1(double* T, ", 1)
for old, new in [
        ("long yy = 0, uu = 0;", "double t0 = now(); long yy = 0, uu = 0;"),
        ("/* the pooled gradient times the ReLU", "double t1 = now(); T[0] += t1 - t0;\n    /* the pooled gradient times the ReLU"),
        ("/* db[o]: the sum", "double t2 = now(); T[1] += t2 - t1;\n    /* db[o]: the sum"),
        ("for (int rr = 0; rr < ho; rr++) {", "for (int rr = 0; rr < ho; rr++) { double ta = now();"),
        ("for (int dy = 0; dy < 2; dy++)\n", "double tb = now(); T[2] += tb - ta;\n        for (int dy = 0; dy < 2; dy++)\n"),
        ("for (int o = 0; o < cout; o++) db[o] += _mm512_reduce_add_ps(sdb[o]);",
         "T[3] += now() - t2; for (int o = 0; o < cout; o++) db[o] += _mm512_reduce_add_ps(sdb[o]);")]:
    assert old in body, old
    body = body.replace(old, new, 1)
sys.stdout.write(body)
