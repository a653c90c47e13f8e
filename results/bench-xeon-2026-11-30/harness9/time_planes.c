/* conv.pyx's hpc_fwd_planes at two commits, on LeNet's two shapes that session 9 changed:
   conv1's forward (1 -> 6 channels, 28 x 28, bias) and conv2's input gradient (16 -> 6,
   14 x 14, no bias), 256 images, fastest of 7, the two builds alternating, 3 passes.
   Checks first that both give the same outputs bit for bit (each output is the same FMA chain). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
void old_planes(const float*, int, int, const float*, const float*, float*, int, int, int);
void new_planes(const float*, int, int, const float*, const float*, float*, int, int, int);
void old_pad_rows(const float*, int, int, int, int, float*);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static float* rnd(long n) { float* p = aligned_alloc(64, 4 * n + 256); for (long i = 0; i < n + 64; i++) p[i] = rand() / (float)RAND_MAX - 0.5f; return p; }
typedef void (*planes_fn)(const float*, int, int, const float*, const float*, float*, int, int, int);
int main(void) {
    const int N = 256;
    struct { const char* name; int cin, cout, h; int bias; } shapes[] = {
        {"conv1 forward (1 -> 6, 28 x 28)", 1, 6, 28, 1}, {"conv2 input gradient (16 -> 6, 14 x 14)", 16, 6, 14, 0}};
    for (int s = 0; s < 2; s++) {
        const int cin = shapes[s].cin, cout = shapes[s].cout, h = shapes[s].h, hp = h + 4;
        float *x = rnd((long)N * cin * h * h), *xp = rnd((long)cin * hp * hp + 16), *w = rnd(cout * cin * 25);
        float *b = shapes[s].bias ? rnd(cout) : NULL, *o1 = rnd(cout * h * h), *o2 = rnd(cout * h * h);
        memset(xp, 0, 4 * ((long)cin * hp * hp + 16));
        old_pad_rows(x, cin, h, h, 2, xp);
        old_planes(xp, cin, 5, w, b, o1, cout, h, h);
        new_planes(xp, cin, 5, w, b, o2, cout, h, h);
        printf("%s: outputs %s\n", shapes[s].name, memcmp(o1, o2, 4L * cout * h * h) ? "DIFFER" : "identical");
        for (int pass = 0; pass < 3; pass++) {
            double best[2] = {1e9, 1e9};
            for (int rep = 0; rep < 7; rep++)
                for (int which = 0; which < 2; which++) {
                    planes_fn f = which ? new_planes : old_planes;
                    double t0 = now();
                    for (int i = 0; i < N; i++) {
                        old_pad_rows(x + (long)i * cin * h * h, cin, h, h, 2, xp);
                        f(xp, cin, 5, w, b, o1, cout, h, h);
                    }
                    double t = now() - t0;
                    if (t < best[which]) best[which] = t;
                }
            printf("  pass %d: old %.3f ms, new %.3f ms per 256 images: %.2fx\n", pass + 1, best[0] * 1e3,
                   best[1] * 1e3, best[0] / best[1]);
        }
    }
    return 0;
}
