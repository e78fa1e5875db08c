// The float32 peak of this machine: FMA throughput with 12 independent accumulator chains per
// thread, AVX-512 and AVX2. Build and run (2 threads):
//   gcc -O3 -pthread scripts/fp32_peak.c -o fp32_peak && ./fp32_peak 2
// (-O3 unrolls the chains into registers; at -O2 they go through memory and measure latency)
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#define ITERS 200000000L
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
__attribute__((target("avx512f"))) static void *run512(void *out) {
  __m512 a[12], b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
  for (long n = 0; n < ITERS; n++)
    for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
  float s = 0; for (int i = 0; i < 12; i++) s += _mm512_reduce_add_ps(a[i]);
  *(float *)out = s; return NULL;
}
__attribute__((target("avx2,fma"))) static void *run256(void *out) {
  __m256 a[12], b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
  for (long n = 0; n < ITERS; n++)
    for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], b, c);
  float s = 0; for (int i = 0; i < 12; i++) { float v[8]; _mm256_storeu_ps(v, a[i]); for (int j = 0; j < 8; j++) s += v[j]; }
  *(float *)out = s; return NULL;
}
int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  struct { const char *name; void *(*f)(void *); int lanes; } kinds[] = {{"AVX-512", run512, 16}, {"AVX2", run256, 8}};
  for (int k = 0; k < 2; k++) {
    if (k == 0 && !__builtin_cpu_supports("avx512f")) { printf("AVX-512: not on this CPU\n"); continue; }
    pthread_t t[64]; float out[64];
    double start = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, kinds[k].f, &out[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double secs = now() - start;
    double flops = 2.0 * kinds[k].lanes * 12 * ITERS * threads;
    printf("%s FMA, %d threads: %.1f GFLOP/s\n", kinds[k].name, threads, flops / secs / 1e9);
  }
  return 0;
}
