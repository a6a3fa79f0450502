"""Time leitmotiv's VB-GMM fit against scikit-learn's BayesianGaussianMixture.

Usage: ``python benchmarks/fit.py [photo.jpg ...] [--n 5000]``

Both fits run in the same process on the same standardized (x, y, L, a, b) features of
each photo; the held-out mean log-likelihood per sample of both models is computed the
same way (SciPy densities), so quality and speed are compared on equal terms.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

sys.path.insert(0, str(Path(__file__).parent))

from _photo_features import DEFAULT_PHOTOS, photo_features

from leitmotiv.vbgmm import fit_mixture


def held_out_log_likelihood(weights, means, covariances, X) -> float:
    """Mean log density per sample of a Gaussian mixture."""
    per_component = [
        np.log(w) + multivariate_normal(m, c).logpdf(X)
        for w, m, c in zip(weights, means, covariances, strict=True)
    ]
    return float(logsumexp(np.column_stack(per_component), axis=1).mean())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", nargs="*", default=list(DEFAULT_PHOTOS))
    parser.add_argument("--n", type=int, default=5000, help="training (and held-out) samples")
    parser.add_argument("--components", type=int, default=50)
    args = parser.parse_args(argv)

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture

    # Warm up: first call pays for imports and OpenMP thread creation.
    fit_mixture(np.random.default_rng(0).normal(size=(200, 5)), max_components=5)

    header = (
        f"{'photo':24s} {'leitmotiv s':>11s} {'sklearn s':>10s} {'ratio':>7s} "
        f"{'K':>3s} {'iter':>4s} {'ll leitmotiv':>12s} {'ll sklearn':>10s} {'diff':>7s}"
    )
    print(header)
    ratios, diffs = [], []
    for name in args.photos:
        train, held_out = photo_features(name, n=args.n, seed=0)

        start = time.perf_counter()
        ours = fit_mixture(train, max_components=args.components, seed=0)
        ours_s = time.perf_counter() - start

        theirs = BayesianGaussianMixture(
            n_components=args.components,
            weight_concentration_prior=0.01,
            weight_concentration_prior_type="dirichlet_distribution",
            covariance_type="full",
            tol=1e-3,
            random_state=0,
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            theirs.fit(train)
        theirs_s = time.perf_counter() - start

        ours_ll = held_out_log_likelihood(ours.weights, ours.means, ours.covariances, held_out)
        theirs_ll = held_out_log_likelihood(
            theirs.weights_, theirs.means_, theirs.covariances_, held_out
        )
        ratios.append(theirs_s / ours_s)
        diffs.append(ours_ll - theirs_ll)
        print(
            f"{name:24s} {ours_s:11.3f} {theirs_s:10.3f} {ratios[-1]:6.1f}x "
            f"{ours.n_components:3d} {ours.n_iter:4d} {ours_ll:12.4f} {theirs_ll:10.4f} "
            f"{diffs[-1]:+7.4f}"
        )
    geometric = float(np.exp(np.mean(np.log(ratios))))
    print(
        f"speed ratio: geometric mean {geometric:.1f}x, min {min(ratios):.1f}x; "
        f"held-out ll difference (leitmotiv - sklearn): mean {np.mean(diffs):+.4f}, "
        f"min {min(diffs):+.4f} nats"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
