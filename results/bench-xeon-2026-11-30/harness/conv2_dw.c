/* conv2's weight gradient alone (hpc_dw_image_olanes5 of kernels/conv.pyx), 256 images of
   LeNet's conv2 (6 -> 16 channels, 14 x 14), with the sizes as compile-time constants and as
   run-time values (volatile, through a non-inlined call, as the Cython module passes them).
   Built by run.sh against the C block of a given conv.pyx; prints the fastest of 40 passes. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "conv_block.h"
#ifndef BODY
#define BODY hpc_dw_image_olanes5
#endif
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
__attribute__((noinline)) static void run_time_sizes(const float* xp, const float* g, float* gt, float* dwt,
                                                     int cin, int cout, int h, int wd) {
    BODY(xp, g, gt, dwt, cin, cout, h, wd);
}
volatile int V6 = 6, V16 = 16, V14 = 14;
enum { N = 256 };
int main(void) {
    float *x = aligned_alloc(64, 4L * N * 6 * 196), *g = aligned_alloc(64, 4L * N * 16 * 196);
    float *xp = aligned_alloc(64, 4 * (6 * 18 * 18 + 16)), *gt = aligned_alloc(64, 4 * 16 * 196);
    float *dwt = aligned_alloc(64, 4 * 2400);
    srand(1);
    for (long i = 0; i < 6L * N * 196; i++) x[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < 16L * N * 196; i++) g[i] = rand() / (float)RAND_MAX - 0.5f;
    memset(dwt, 0, 4 * 2400);
    hpc_pad_zero(6, 14, 14, 2, xp);
    int cin = V6, cout = V16, h = V14, wd = V14;
    double best[2] = {1e9, 1e9};
    for (int rep = 0; rep < 40; rep++) {
        double t0 = now();
        for (int i = 0; i < N; i++) {
            hpc_pad_rows(x + i * 6 * 196L, 6, 14, 14, 2, xp);
            run_time_sizes(xp, g + i * 16 * 196L, gt, dwt, cin, cout, h, wd);
        }
        double t1 = now();
        for (int i = 0; i < N; i++) {
            hpc_pad_rows(x + i * 6 * 196L, 6, 14, 14, 2, xp);
            BODY(xp, g + i * 16 * 196L, gt, dwt, 6, 16, 14, 14);
        }
        double t2 = now();
        if (t1 - t0 < best[0]) best[0] = t1 - t0;
        if (t2 - t1 < best[1]) best[1] = t2 - t1;
    }
    printf("run-time sizes %.3f ms   constant sizes %.3f ms   (256 images, fastest of 40)\n",
           1e3 * best[0], 1e3 * best[1]);
    return dwt[7] == 12345.0f;
}
