/* Branch-free exp and log for the hot loops of the Cython kernels in ext/.

   libm's exp and log are scalar calls; these are plain arithmetic on the bit patterns,
   so loops calling them vectorize.  LM_CLONES compiles a kernel for AVX2 and AVX-512
   as well, and the best version is picked when the module loads (GCC, x86-64 Linux). */
#ifndef LEITMOTIV_FASTMATH_H
#define LEITMOTIV_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp for the hot loops, by our own branch-free routine so that the loops
   vectorize; libm's exp is a scalar call and was most of the run time.  It expects
   x <= 0 (terms shifted by their maximum) and clamps at -60, since exp(-60) ~ 9e-27 is far
   below the rounding of a sum whose largest term is 1.  Cody-Waite reduction
   x = k ln2 + r with |r| <= ln2/2, the degree-13 Taylor polynomial of exp(r)
   (truncation error < 1e-17 relative) and a scale by 2^k assembled from the
   exponent bits; accuracy is a few ulp.  The loops that use it carry OpenMP simd
   pragmas, which allow vectorizing their reductions without -ffast-math.  On
   GCC/x86-64/Linux the kernel is also compiled for AVX2 and AVX-512 and the best
   version is picked when the module loads. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define LM_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define LM_CLONES
#endif

static inline double lm_exp_nonpositive(double xin) {
    const double log2e = 1.4426950408889634;
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double shifter = 6755399441055744.0;  /* 1.5 * 2^52: adding it rounds */
    const uint64_t clamp_bits = 0xC04E000000000000ULL;  /* -60.0 */
    int64_t shifter_bits;
    memcpy(&shifter_bits, &shifter, sizeof shifter_bits);
    /* Clamp on the bit pattern: for non-positive doubles a larger unsigned pattern
       is a more negative number (-inf the largest).  A floating-point select here
       stopped GCC from vectorizing. */
    uint64_t xb;
    double x;
    memcpy(&xb, &xin, sizeof xb);
    xb = xb > clamp_bits ? clamp_bits : xb;
    memcpy(&x, &xb, sizeof x);
    double t = x * log2e + shifter;
    double k = t - shifter;
    double r = (x - k * ln2_hi) - k * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t tb;
    memcpy(&tb, &t, sizeof tb);
    int64_t sb = (tb - shifter_bits + 1023) << 52;
    double scale;
    memcpy(&scale, &sb, sizeof scale);
    return p * scale;
}

/* log(x) for positive, normal, finite x, vectorizable: x = 2^e f with f folded into
   [sqrt(1/2), sqrt(2)), then log f = 2 atanh(s) = 2 s (1 + s^2/3 + ... + s^18/19)
   with s = (f - 1) / (f + 1), |s| <= 0.172 (truncation < 1e-18 relative), and
   e ln 2 added in two parts.  The exponent is turned into a double through the bit
   pattern, since AVX2 has no vector int64-to-double conversion. */
static inline double lm_log_positive(double x) {
    const double ln2_hi = 6.93147180369123816490e-01;
    const double ln2_lo = 1.90821492927058770002e-10;
    const double two52 = 4503599627370496.0;
    uint64_t xb;
    memcpy(&xb, &x, sizeof xb);
    uint64_t eb = (xb >> 52) | 0x4330000000000000ULL;  /* the double 2^52 + E */
    double e;
    memcpy(&e, &eb, sizeof e);
    e = (e - two52) - 1023.0;
    uint64_t fb = (xb & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;
    double f;
    memcpy(&f, &fb, sizeof f);
    const int big = f > 1.4142135623730951;
    f = big ? 0.5 * f : f;
    e = big ? e + 1.0 : e;
    const double s = (f - 1.0) / (f + 1.0);
    const double z = s * s;
    double p = 1.0 / 19.0;
    p = p * z + 1.0 / 17.0;
    p = p * z + 1.0 / 15.0;
    p = p * z + 1.0 / 13.0;
    p = p * z + 1.0 / 11.0;
    p = p * z + 1.0 / 9.0;
    p = p * z + 1.0 / 7.0;
    p = p * z + 1.0 / 5.0;
    p = p * z + 1.0 / 3.0;
    const double logf = 2.0 * s + 2.0 * s * z * p;
    return e * ln2_hi + (e * ln2_lo + logf);
}

#endif
