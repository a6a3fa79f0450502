/* Log-sum-exp over the components of Gaussian mixtures, on the component-major tiles
   of log-density terms that the kernels in ext/ compute by one matrix product each, and
   the Jensen-Shannon half-sums folded into it.  Shared by mixture.pyx (the own
   log-densities of sample sets) and divergence.pyx (the cross log-densities). */
#ifndef LEITMOTIV_LOGSUMEXP_H
#define LEITMOTIV_LOGSUMEXP_H

#include "fastmath.h"

/* Log-sum-exp per mixture over a tile laid out component-major: row j of the tile
   holds component (offsets[c0] + j)'s terms at `ns` samples, rows `ld` apart.  All
   loops run along the samples, so they vectorize fully with no horizontal
   reductions or scalar tails (a mixture has only tens of components, but a tile has
   a hundred-odd samples).

   Without `own` (NULL): out[(c - c0) * ld + s] = log(sum_j exp(tile[j][s])) over
   mixture c's rows, for c0 <= c < c1 and every sample s.

   With `own` (ln p at the samples): the log-densities ln q are not stored but folded
   into the Jensen-Shannon half-sums, tsum[c - c0] += sum_s t and
   tsq[c - c0] += sum_s t^2 with t = ln 2 - softplus(ln q - ln p).  If for every sample
   of the tile even the upper bound max + log K_c (log_k[c] = log K_c) is below
   ln p - gap, the exponentials are skipped and the bound stands in for ln q; with
   gap = 45, softplus < 3e-20 there, below half an ulp of ln 2, so t is the same.
   `out` is then scratch for ld doubles per mixture, `mx` for ns doubles.  Terms must
   be finite (or -inf with a finite term per mixture), as the Python side ensures. */
LM_CLONES
static void lm_lse_columns(const double *tile, Py_ssize_t ld, Py_ssize_t ns,
                           const Py_ssize_t *offsets, Py_ssize_t c0, Py_ssize_t c1,
                           const double *log_k, const double *own, double gap,
                           double *mx, double *out, double *tsum, double *tsq) {
    const double ln2 = 0.6931471805599453;
    const Py_ssize_t k0 = offsets[c0];
    for (Py_ssize_t c = c0; c < c1; c++) {
        const Py_ssize_t a = offsets[c] - k0, b = offsets[c + 1] - k0;
        double *o = out + (c - c0) * ld;
        const double *row = tile + a * ld;
        #pragma omp simd
        for (Py_ssize_t s = 0; s < ns; s++) mx[s] = row[s];
        for (Py_ssize_t j = a + 1; j < b; j++) {
            row = tile + j * ld;
            #pragma omp simd
            for (Py_ssize_t s = 0; s < ns; s++) mx[s] = row[s] > mx[s] ? row[s] : mx[s];
        }
        int below = own != NULL;
        for (Py_ssize_t s = 0; s < ns && below; s++) {
            below = mx[s] + log_k[c] < own[s] - gap;
        }
        if (below) {
            #pragma omp simd
            for (Py_ssize_t s = 0; s < ns; s++) o[s] = mx[s] + log_k[c];
        } else {
            #pragma omp simd
            for (Py_ssize_t s = 0; s < ns; s++) o[s] = 0.0;
            for (Py_ssize_t j = a; j < b; j++) {
                row = tile + j * ld;
                #pragma omp simd
                for (Py_ssize_t s = 0; s < ns; s++) {
                    o[s] += lm_exp_nonpositive(row[s] - mx[s]);
                }
            }
            #pragma omp simd
            for (Py_ssize_t s = 0; s < ns; s++) o[s] = mx[s] + lm_log_positive(o[s]);
        }
        if (own != NULL) {
            double st = 0.0, sq = 0.0;
            #pragma omp simd reduction(+:st, sq)
            for (Py_ssize_t s = 0; s < ns; s++) {
                /* softplus(d) = max(d, 0) + log1p(exp(-|d|)), log1p via the
                   compensated log(1 + y) + (y - ((1 + y) - 1)) / (1 + y). */
                const double d = o[s] - own[s];
                const double y = lm_exp_nonpositive(-fabs(d));
                const double u = 1.0 + y;
                const double l1p = lm_log_positive(u) + (y - (u - 1.0)) / u;
                const double t = ln2 - ((d > 0.0 ? d : 0.0) + l1p);
                st += t;
                sq += t * t;
            }
            tsum[c - c0] += st;
            tsq[c - c0] += sq;
        }
    }
}

#endif
