/* Where conv1's 16-image backward pass (hpc_bwd1_group16) spends its time: 256 images (16 groups)
   x 20 repeats, the clock read between its parts; beside an in-register FMA loop's GFLOP/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
#include "conv_block.h"
#include "prof_body.h"
static float* rnd(long n) { float* p = aligned_alloc(64, 4 * n + 256); for (long i = 0; i < n; i++) p[i] = rand() / (float)RAND_MAX - 0.5f; return p; }
static double fma_peak(void) {
    __m512 a[24]; for (int i = 0; i < 24; i++) a[i] = _mm512_set1_ps(i * 1e-3f);
    const __m512 x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-6f);
    const long it = 5000000; double t0 = now();
    for (long i = 0; i < it; i++) { _Pragma("GCC unroll 24") for (int j = 0; j < 24; j++) a[j] = _mm512_fmadd_ps(a[j], x, y); __asm__("" :: "v"(x)); }
    double t = now() - t0; float s = 0; for (int i = 0; i < 24; i++) s += a[i][0];
    return it * 24 * 32.0 / t / 1e9 + (s > 1e30);
}
int main(void) {
    float *x = rnd(256 * 784), *dout = rnd(256 * 1176), *y = rnd(256 * 1176), *xb = rnd(32 * 32 * 16 + 64);
    float *dt = rnd(1176 * 16), *kt = rnd(1176 * 16), *g2 = rnd(2 * 6 * 28 * 16), *acc = rnd(6 * 25 * 16), *db = rnd(6);
    unsigned char* idx = malloc(256 * 1176); for (int i = 0; i < 256 * 1176; i++) idx[i] = rand() % 4;
    memset(xb, 0, 4 * (32 * 32 * 16 + 64));
    for (int pass = 0; pass < 3; pass++) {
        double T[4] = {0};
        for (int rep = 0; rep < 20; rep++)
            for (int g = 0; g < 16; g++)
                prof_bwd1(T, x + g * 16 * 784, dout + g * 16 * 1176, y + g * 16 * 1176, idx + g * 16 * 1176, 6, 28, 28,
                          xb, dt, kt, g2, acc, db);
        const double tot = T[0] + T[1] + T[3], fma = (T[3] - T[2]) / 20;
        printf("ms per 256 images: pixels %.3f, pooled gradient + positions %.3f, pre-pool rows %.3f, "
               "weight-gradient FMAs %.3f (%.0f GFLOP/s); total %.3f; FMA probe %.0f GFLOP/s\n",
               T[0] / 20 * 1e3, T[1] / 20 * 1e3, T[2] / 20 * 1e3, fma * 1e3, 2.0 * 6 * 25 * 784 * 256 / fma / 1e9,
               tot / 20 * 1e3, fma_peak());
    }
    return 0;
}
