"""Benchmark the Monte Carlo Jensen–Shannon divergence on mixtures of real photos.

Run ``python benchmarks/js.py``.  Every photo is blurred, 5000 random pixels are taken
as ``(x, y, L, a, b)`` samples and standardized, and a variational-Bayes mixture is fit
(``leitmotiv.vbgmm.fit_mixture`` when importable, otherwise scikit-learn's
``BayesianGaussianMixture``).  Then, in this one process and on the same mixtures:

1. the cost per pair inside :func:`leitmotiv.divergence.js_matrix` against a Monte
   Carlo estimate of the same ``n_samples`` whose densities come from scikit-learn's
   ``score_samples``;
2. the wall time of all pairs of 1000 mixtures (the fitted ones, replicated with small
   perturbations of their means to reach 1000).
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from leitmotiv.divergence import js_divergence, js_matrix
from leitmotiv.mixture import Mixture
from leitmotiv.transform import FeatureTransform

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"


def photo_features(path: Path, n: int = 5000, seed: int = 0) -> tuple[np.ndarray, FeatureTransform]:
    """Standardized ``(x, y, L, a, b)`` samples of a blurred photo and their transform."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    # Blur so each sample stands for its neighbourhood, not a single noisy pixel.
    bgr = cv2.GaussianBlur(bgr, (0, 0), sigmaX=2.0)
    lab = cv2.cvtColor(bgr.astype(np.float32) / 255.0, cv2.COLOR_BGR2Lab).astype(np.float64)
    h, w = lab.shape[:2]
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, h, n)
    xs = rng.integers(0, w, n)
    raw = np.column_stack([xs, ys, lab[ys, xs]]).astype(np.float64)
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    std[std < 1e-9] = 1.0
    transform = FeatureTransform(mean, np.diag(1.0 / std), "lab", w, h)
    return transform.forward(raw), transform


def fit(Z: np.ndarray, transform: FeatureTransform, seed: int = 0):
    """Fit a mixture; also return a scikit-learn model of it for ``score_samples``."""

    try:
        from leitmotiv.vbgmm import fit_mixture
    except ImportError:
        fit_mixture = None
    if fit_mixture is not None:
        m = fit_mixture(Z, max_components=50, seed=seed)
        m = Mixture(m.weights, m.means, m.covariances, m.lower_bound, m.n_iter, transform)
    else:
        from sklearn.mixture import BayesianGaussianMixture

        bgm = BayesianGaussianMixture(
            n_components=50, weight_concentration_prior=0.01, max_iter=200, random_state=seed
        ).fit(Z)
        # Components with (numerically) no weight contribute nothing; drop them.
        keep = bgm.weights_ > 1e-3
        w = bgm.weights_[keep] / bgm.weights_[keep].sum()
        m = Mixture(w, bgm.means_[keep], bgm.covariances_[keep], transform=transform)
    return with_sklearn(m)


def with_sklearn(m: Mixture):
    """The mixture and an sklearn model with exactly its parameters, for the baseline."""
    from sklearn.mixture import GaussianMixture

    sk = GaussianMixture(n_components=m.n_components, covariance_type="full")
    sk.weights_ = m.weights
    sk.means_ = m.means
    sk.covariances_ = m.covariances
    sk.precisions_cholesky_ = np.linalg.inv(m.cholesky).transpose(0, 2, 1)
    return m, sk


def sklearn_js(p: Mixture, q: Mixture, sp, sq, n_samples: int, seed: int) -> float:
    """The same Monte Carlo estimator with densities from ``score_samples``."""
    xp = p.sample(n_samples, seed)
    xq = q.sample(n_samples, seed + 1)
    lpp, lqp = sp.score_samples(xp), sq.score_samples(xp)
    lpq, lqq = sp.score_samples(xq), sq.score_samples(xq)
    lmp = np.logaddexp(lpp, lqp) - np.log(2.0)
    lmq = np.logaddexp(lpq, lqq) - np.log(2.0)
    return float(np.clip(0.5 * np.mean(lpp - lmp) + 0.5 * np.mean(lqq - lmq), 0, np.log(2)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=160, help="photos to fit")
    parser.add_argument("--mixtures", type=int, default=1000, help="mixtures for all-pairs")
    parser.add_argument("--n-samples", type=int, default=1000)
    parser.add_argument("--baseline-pairs", type=int, default=40)
    parser.add_argument("--cache", type=Path, help="file to keep the fitted mixtures in")
    args = parser.parse_args(argv)

    paths = sorted(PHOTOS.glob("*.jpg"))[: args.photos]
    t0 = time.perf_counter()
    if args.cache is not None and args.cache.exists():
        blobs = pickle.loads(args.cache.read_bytes())[: args.photos]
        fitted = [with_sklearn(Mixture.from_bytes(b)) for b in blobs]
    else:
        fitted = [fit(*photo_features(p, seed=i), seed=0) for i, p in enumerate(paths)]
        if args.cache is not None:
            args.cache.write_bytes(pickle.dumps([m.to_bytes() for m, _ in fitted]))
    mixtures = [m for m, _ in fitted]
    ks = np.array([m.n_components for m in mixtures])
    print(f"fitted {len(mixtures)} photos in {time.perf_counter() - t0:.1f} s; "
          f"components per mixture: mean {ks.mean():.1f}, min {ks.min()}, max {ks.max()}",
          flush=True)
    print(f"cores: {os.cpu_count()}, n_samples: {args.n_samples}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    # (1) per-pair cost: inside js_matrix (amortized; sampling excluded by warming the
    # per-mixture cache, since a library samples each photo once) versus sklearn.
    n_pairs = min(args.baseline_pairs, len(fitted) // 2)
    rng = np.random.default_rng(1)
    pairs = [tuple(rng.choice(len(fitted), 2, replace=False)) for _ in range(n_pairs)]
    t0, c0 = time.perf_counter(), time.process_time()
    for i, j in pairs:
        sklearn_js(mixtures[i], mixtures[j], fitted[i][1], fitted[j][1], args.n_samples, 0)
    t_sk = (time.perf_counter() - t0) / n_pairs
    c_sk = (time.process_time() - c0) / n_pairs
    js_matrix(mixtures, args.n_samples)  # warm the sample cache
    t0, c0 = time.perf_counter(), time.process_time()
    J = js_matrix(mixtures, args.n_samples)
    t_mat, c_mat = time.perf_counter() - t0, time.process_time() - c0
    t_pair = t_mat / (len(mixtures) * (len(mixtures) - 1) / 2)
    print(f"(1) sklearn score_samples MC: {t_sk * 1e3:.2f} ms/pair "
          f"({c_sk * 1e3:.2f} ms CPU); "
          f"js_matrix of {len(mixtures)}: {t_mat:.2f} s = {t_pair * 1e6:.1f} us/pair; "
          f"speed-up {t_sk / t_pair:.0f}x (CPU: {c_mat:.2f} s over "
          f"{len(mixtures) * (len(mixtures) - 1) // 2} pairs; CPU-time speed-up "
          f"{c_sk / (c_mat / (len(mixtures) * (len(mixtures) - 1) / 2)):.0f}x)", flush=True)
    t0 = time.perf_counter()
    for i, j in pairs:
        js_divergence(mixtures[i], mixtures[j], args.n_samples)
    t_single = (time.perf_counter() - t0) / n_pairs
    print(f"    js_divergence one pair at a time (cached samples): {t_single * 1e6:.0f} us/pair "
          f"(speed-up {t_sk / t_single:.0f}x)")
    i, j = pairs[0]
    print(f"    sanity: pair {i},{j}: js_matrix {J[i, j]:.4f}, sklearn-based "
          f"{sklearn_js(mixtures[i], mixtures[j], fitted[i][1], fitted[j][1], 20000, 0):.4f}"
          " (20k samples)")

    # (2) all pairs of N mixtures: replicate with small perturbations of the means.
    big = []
    rng = np.random.default_rng(2)
    while len(big) < args.mixtures:
        m = mixtures[len(big) % len(mixtures)]
        if len(big) >= len(mixtures):
            m = Mixture(m.weights, m.means + 0.02 * rng.standard_normal(m.means.shape),
                        m.covariances, transform=m.transform)
        big.append(m)
    kb = np.array([m.n_components for m in big])
    t0, c0 = time.perf_counter(), time.process_time()
    J = js_matrix(big, args.n_samples)
    t_all, c_all = time.perf_counter() - t0, time.process_time() - c0
    # CPU seconds are reported too: on a shared machine the wall time says more about
    # the other processes than about this code.
    print(f"(2) all pairs of {len(big)} mixtures (mean K {kb.mean():.1f}), "
          f"n_samples {args.n_samples}: {t_all:.1f} s wall, {c_all:.1f} s CPU (all threads), "
          f"including sampling ({len(big) * (len(big) - 1) // 2} pairs); "
          f"finite: {bool(np.isfinite(J).all())}; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
