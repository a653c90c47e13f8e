/* One conv.pyx C block (the header named by -include at compile time) behind a uniquely named
   wrapper, so that two commits' kernels link into one timing binary. */
#include "conv_block.h"
void PLANES(const float* xp, int cin, int k, const float* w, const float* b, float* out, int cout,
            int h, int wd) {
    hpc_fwd_planes(xp, cin, k, w, b, out, cout, h, wd);
}
void PAD_ROWS(const float* src, int nc, int h, int wd, int pad, float* dst) {
    hpc_pad_rows(src, nc, h, wd, pad, dst);
}
