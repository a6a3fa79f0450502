"""Gaussian mixture models of photos.

Besides the :class:`Mixture` container this module provides its density
(:meth:`Mixture.log_pdf`), sampling, a compact binary serialization, a rendering of the
expected colour at every pixel, affine changes of coordinates, and
:func:`average_mixture`, the equal-weight pool of several mixtures.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from leitmotiv import colour
from leitmotiv._ext import mixture as _kernels
from leitmotiv.transform import FeatureTransform

_LOG_2PI = float(np.log(2.0 * np.pi))

# Binary format: magic, version, flags, d, K, lower_bound, n_iter; then weights, means
# and covariances as little-endian float64; then the transform as length-prefixed UTF-8
# JSON (when flag bit 0 is set); finally a CRC-32 of everything before it so truncated
# or flipped bytes are caught rather than silently decoded into a different model.
_MAGIC = b"LMGM"
_VERSION = 1
_HEADER = struct.Struct("<4sHHIIdq")
_FLAG_TRANSFORM = 1


def _cholesky(cov: np.ndarray, k: int) -> np.ndarray:
    """Lower Cholesky factor of one covariance, with a last-resort jitter.

    A covariance that is positive definite in exact arithmetic can fail the
    factorization by rounding when it is nearly singular; a diagonal jitter of a tiny
    fraction of its scale is then the least intrusive repair.  Anything that still fails
    is not a covariance and is reported.
    """
    cov = 0.5 * (cov + cov.T)
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        pass
    scale = max(float(np.trace(cov)) / cov.shape[0], np.finfo(float).tiny)
    for rel in (1e-14, 1e-12, 1e-10, 1e-8):
        try:
            return np.linalg.cholesky(cov + rel * scale * np.eye(cov.shape[0]))
        except np.linalg.LinAlgError:
            continue
    raise ValueError(f"covariance of component {k} is not positive definite")


@dataclass(frozen=True, eq=False)
class Mixture:
    """A Gaussian mixture in model coordinates.

    Attributes
    ----------
    weights : ndarray, shape (K,)
        Mixing weights, positive, summing to one.
    means : ndarray, shape (K, d)
    covariances : ndarray, shape (K, d, d)
        Symmetric positive definite.
    lower_bound : float
        Evidence lower bound per sample of the fit that produced it (nan if none).
    n_iter : int
        Iterations of that fit.
    transform : FeatureTransform or None
        Map from raw photo samples to the model's coordinates, when the mixture
        models a photo.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    lower_bound: float = float("nan")
    n_iter: int = 0
    transform: FeatureTransform | None = None

    def __post_init__(self) -> None:
        weights = np.ascontiguousarray(self.weights, dtype=np.float64)
        means = np.ascontiguousarray(self.means, dtype=np.float64)
        covariances = np.ascontiguousarray(self.covariances, dtype=np.float64)
        k, d = means.shape
        if weights.shape != (k,) or covariances.shape != (k, d, d):
            raise ValueError(
                f"inconsistent mixture shapes: weights {weights.shape}, means {means.shape}, "
                f"covariances {covariances.shape}"
            )
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covariances", covariances)

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return self.weights.size

    @property
    def dim(self) -> int:
        """Dimension d of the modelled space."""
        return self.means.shape[1]

    # ------------------------------------------------------------------ density

    @cached_property
    def cholesky(self) -> np.ndarray:
        """Lower Cholesky factors of the covariances, shape (K, d, d), computed once.

        ``cached_property`` stores into the instance ``__dict__`` directly, which a
        frozen dataclass permits; the arrays are marked read-only so the cache cannot
        drift from the covariances.
        """
        try:
            # One LAPACK call for all components; the per-component repair only when
            # some factorization fails.
            sym = 0.5 * (self.covariances + self.covariances.transpose(0, 2, 1))
            chol = np.linalg.cholesky(sym)
        except np.linalg.LinAlgError:
            chol = np.stack([_cholesky(c, k) for k, c in enumerate(self.covariances)])
        chol = np.ascontiguousarray(chol)
        chol.flags.writeable = False
        return chol

    @cached_property
    def log_norm(self) -> np.ndarray:
        """Per-component ``log w_k - d/2 log(2 pi) - 1/2 log det Sigma_k``, shape (K,).

        Components of zero weight get ``-inf`` and drop out of every density.
        """
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        half_logdet = np.log(np.diagonal(self.cholesky, axis1=1, axis2=2)).sum(axis=1)
        out = log_w - 0.5 * self.dim * _LOG_2PI - half_logdet
        out.flags.writeable = False
        return out

    def log_pdf(self, X: np.ndarray) -> np.ndarray:
        """Log-density of the mixture at each row of ``X``.

        Parameters
        ----------
        X : array_like, shape (n, d) or (d,)

        Returns
        -------
        ndarray, shape (n,)
            ``log sum_k w_k N(x | mu_k, Sigma_k)``, evaluated in compiled code from the
            cached Cholesky factors with a max-shifted log-sum-exp.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(1, -1)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"expected samples of shape (n, {self.dim}), got {X.shape}")
        return _kernels.log_pdf(np.ascontiguousarray(X), self.means, self.cholesky, self.log_norm)

    def sample(self, n: int, seed: int | np.random.Generator | None = 0) -> np.ndarray:
        """Draw ``n`` samples.

        Component counts are one multinomial draw, then each component contributes
        ``mu_k + L_k z`` with standard normal ``z``.  The rows are shuffled so that any
        prefix is itself a sample from the mixture.

        Parameters
        ----------
        n : int
        seed : int, Generator or None
            Passed to :func:`numpy.random.default_rng`.

        Returns
        -------
        ndarray, shape (n, d)
        """
        n = int(n)
        if n < 0:
            raise ValueError("n must be non-negative")
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(n, self.weights / self.weights.sum())
        labels = np.repeat(np.arange(self.n_components), counts)
        # One draw for all components: the same stream as drawing component by component.
        z = rng.standard_normal((n, self.dim))
        out = self.means[labels] + np.einsum("nij,nj->ni", self.cholesky[labels], z)
        return out[rng.permutation(n)]

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean, shape (d,), and covariance, shape (d, d), of the whole mixture."""
        w = self.weights / self.weights.sum()
        mean = w @ self.means
        dev = self.means - mean
        cov = np.einsum("k,kij->ij", w, self.covariances) + (w[:, None] * dev).T @ dev
        return mean, cov

    # ------------------------------------------------------------ coordinates

    def transformed(
        self, A: np.ndarray, b: np.ndarray | None = None, *, update_transform: bool = True
    ) -> Mixture:
        """The image of the mixture under the affine map ``z -> A z + b``.

        Parameters
        ----------
        A : array_like, shape (d, d)
            Invertible.
        b : array_like, shape (d,), optional
        update_transform : bool
            If true (default) the feature transform is composed with the map, so the
            result describes the same photo in new model coordinates (rendering is
            unchanged).  If false the transform is kept as is, so the result models the
            photo moved by the map (e.g. mirrored) in the original coordinates.

        Returns
        -------
        Mixture
        """
        A = np.asarray(A, dtype=np.float64)
        b = np.zeros(self.dim) if b is None else np.asarray(b, dtype=np.float64)
        if A.shape != (self.dim, self.dim) or b.shape != (self.dim,):
            raise ValueError(f"affine map must be ({self.dim}, {self.dim}) and ({self.dim},)")
        transform = self.transform
        if update_transform and transform is not None:
            # z' = A M (raw - off) + b = (A M)(raw - (off - (A M)^{-1} b))
            matrix = A @ transform.matrix
            transform = FeatureTransform(
                offset=transform.offset - np.linalg.solve(matrix, b),
                matrix=matrix,
                colour_space=transform.colour_space,
                width=transform.width,
                height=transform.height,
            )
        return Mixture(
            weights=self.weights.copy(),
            means=self.means @ A.T + b,
            covariances=np.einsum("ij,kjl,ml->kim", A, self.covariances, A),
            lower_bound=self.lower_bound,
            n_iter=self.n_iter,
            transform=transform,
        )

    def projected(self, A: np.ndarray, b: np.ndarray | None = None) -> Mixture:
        """The image of the mixture under the affine map ``z -> A z + b`` into fewer or
        as many dimensions, without a feature transform.

        Exact for a Gaussian mixture: the weights stay, each component's mean becomes
        ``A mu + b`` and its covariance ``A Sigma A'``.  Rows of the identity give a
        marginal; any full-row-rank ``A`` a linear view such as (x, y, luma).

        Parameters
        ----------
        A : array_like, shape (m, d)
            Of rank ``m``, so that the image has a density.
        b : array_like, shape (m,), optional

        Returns
        -------
        Mixture
            Of dimension ``m``.
        """
        A = np.atleast_2d(np.asarray(A, dtype=np.float64))
        b = np.zeros(A.shape[0]) if b is None else np.asarray(b, dtype=np.float64)
        if A.shape[1] != self.dim or b.shape != (A.shape[0],) or A.shape[0] > self.dim:
            raise ValueError(
                f"a projection of a {self.dim}-D mixture must be (m, {self.dim}) with m <= "
                f"{self.dim} and an (m,) offset, got {A.shape} and {b.shape}"
            )
        covs = np.einsum("ij,kjl,ml->kim", A, self.covariances, A)
        return Mixture(
            self.weights.copy(),
            self.means @ A.T + b,
            0.5 * (covs + covs.transpose(0, 2, 1)),
        )

    def convolved(self, variance: float) -> Mixture:
        """The mixture convolved with an isotropic Gaussian of ``variance`` (a coarser
        scale of the same model): ``variance`` is added to every component's
        covariance diagonal.  The feature transform is kept."""
        variance = float(variance)
        if not (np.isfinite(variance) and variance >= 0.0):
            raise ValueError(f"variance must be a finite number >= 0, got {variance}")
        return Mixture(
            self.weights.copy(),
            self.means.copy(),
            self.covariances + variance * np.eye(self.dim),
            transform=self.transform,
        )

    def raw_components(self) -> tuple[np.ndarray, np.ndarray]:
        """Component means (K, d) and covariances (K, d, d) in raw photo coordinates.

        With ``z = M (raw - offset)``: ``raw mean = M^{-1} mu + offset`` and
        ``raw cov = M^{-1} Sigma M^{-T}``.
        """
        if self.transform is None:
            raise ValueError("mixture has no feature transform, so raw coordinates are unknown")
        if self.transform.dim != self.dim:
            raise ValueError("feature transform dimension does not match the mixture")
        inv = self.transform.inverse_matrix
        means = self.means @ inv.T + self.transform.offset
        covs = np.einsum("ij,kjl,ml->kim", inv, self.covariances, inv)
        return means, 0.5 * (covs + covs.transpose(0, 2, 1))

    # ---------------------------------------------------------------- render

    def render(self, width: int, height: int, *, chunk: int = 1024) -> np.ndarray:
        """The model's expected colour at every pixel, as an RGB image.

        Each output pixel centre is mapped to raw position ``(x, y)`` of the
        transform's ``width x height`` image (pixel ``i`` of ``n`` covers raw
        ``[i, i + 1) * W / n`` and is represented by its centre minus one half, so that
        rendering at the original size lands exactly on integer pixel coordinates).
        The components are mapped back to raw coordinates, where the colour given the
        position is Gaussian per component; the pixel colour is the conditional mean
        ``sum_k w_k(pos) (mu_c,k + S_cp,k S_pp,k^{-1} (pos - mu_p,k))`` with
        ``w_k(pos)`` proportional to ``w_k N(pos | mu_p,k, S_pp,k)``.  This is exact for
        any invertible affine transform, including ones that mix position and colour.

        Parameters
        ----------
        width, height : int
            Size of the output image.
        chunk : int
            Pixels processed at once; small enough to keep the work in cache.

        Returns
        -------
        ndarray of uint8, shape (height, width, 3)
        """
        if self.transform is None:
            raise ValueError("render needs a feature transform to know the image geometry")
        if self.dim != 5:
            raise ValueError("render needs a 5-D (x, y, c1, c2, c3) model")
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError("width and height must be positive")
        t = self.transform
        means, covs = self.raw_components()
        mu_p, mu_c = means[:, :2], means[:, 2:]
        s_pp = covs[:, :2, :2]
        s_cp = covs[:, 2:, :2]
        prec_pp = np.linalg.inv(s_pp)
        gain = s_cp @ prec_pp  # (K, 3, 2): regression of colour on position
        offset_c = mu_c - np.einsum("kcp,kp->kc", gain, mu_p)
        # colour(pos) = sum_k r_k(pos) (offset_c + gain pos), so one product with
        # [offset_c | gain[..., 0] | gain[..., 1]] gives every term at once.
        colour_coef = np.concatenate([offset_c, gain[:, :, 0], gain[:, :, 1]], axis=1)
        # log(w_k N(pos | mu_p, S_pp)) is a quadratic in (x, y): coefficients of
        # [1, x, y, x^2, x y, y^2], so all components at all pixels are one product too.
        with np.errstate(divide="ignore"):
            log_w = np.log(self.weights)
        lin = np.einsum("kij,kj->ki", prec_pp, mu_p)
        const = (
            log_w
            - 0.5 * np.log(np.linalg.det(s_pp))
            - np.log(2.0 * np.pi)
            - 0.5 * np.einsum("ki,ki->k", mu_p, lin)
        )
        quad = np.stack(
            [const, lin[:, 0], lin[:, 1], -0.5 * prec_pp[:, 0, 0], -prec_pp[:, 0, 1],
             -0.5 * prec_pp[:, 1, 1]]
        )
        quad[:, ~np.isfinite(const)] = 0.0
        quad[0, ~np.isfinite(const)] = -np.inf

        xs = (np.arange(width) + 0.5) * (t.width / width) - 0.5
        ys = (np.arange(height) + 0.5) * (t.height / height) - 0.5
        gx, gy = np.meshgrid(xs, ys)
        pos = np.stack([gx.ravel(), gy.ravel()], axis=1)
        out = np.empty((pos.shape[0], 3))
        for start in range(0, pos.shape[0], chunk):
            x, y = pos[start : start + chunk, 0], pos[start : start + chunk, 1]
            feats = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
            logr = feats @ quad
            logr -= logr.max(axis=1, keepdims=True)
            r = np.exp(logr, out=logr)
            r /= r.sum(axis=1, keepdims=True)
            terms = r @ colour_coef
            out[start : start + chunk] = (
                terms[:, 0:3] + x[:, None] * terms[:, 3:6] + y[:, None] * terms[:, 6:9]
            )
        rgb = colour.to_rgb(out, t.colour_space)
        return np.round(rgb * 255.0).astype(np.uint8).reshape(height, width, 3)

    # --------------------------------------------------------- serialization

    def to_bytes(self) -> bytes:
        """Serialize to a compact, versioned byte string (see :meth:`from_bytes`)."""
        k, d = self.means.shape
        flags = _FLAG_TRANSFORM if self.transform is not None else 0
        parts = [
            _HEADER.pack(
                _MAGIC, _VERSION, flags, d, k, float(self.lower_bound), int(self.n_iter)
            ),
            self.weights.astype("<f8").tobytes(),
            self.means.astype("<f8").tobytes(),
            self.covariances.astype("<f8").tobytes(),
        ]
        if self.transform is not None:
            blob = json.dumps(self.transform.to_dict(), separators=(",", ":")).encode()
            parts += [struct.pack("<I", len(blob)), blob]
        body = b"".join(parts)
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, data: bytes) -> Mixture:
        """Inverse of :meth:`to_bytes`.

        Raises
        ------
        ValueError
            If the data are not a serialized mixture, come from an unknown format
            version, or are truncated or corrupted (checksum mismatch).
        """
        data = bytes(data)
        if len(data) < _HEADER.size + 4 or data[:4] != _MAGIC:
            raise ValueError("not a serialized leitmotiv mixture (bad magic or too short)")
        _, version, flags, d, k, lower_bound, n_iter = _HEADER.unpack_from(data)
        if version != _VERSION:
            raise ValueError(f"unsupported mixture format version {version} (know {_VERSION})")
        body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
        if zlib.crc32(body) != crc:
            raise ValueError("corrupt mixture data: checksum mismatch")
        if k < 1 or d < 1:
            raise ValueError(f"corrupt mixture data: {k} components of dimension {d}")
        if flags & ~_FLAG_TRANSFORM:
            raise ValueError(f"corrupt mixture data: unknown flags {flags:#x}")
        n_floats = k + k * d + k * d * d
        pos = _HEADER.size
        end = pos + 8 * n_floats
        if end > len(body):
            raise ValueError("corrupt mixture data: truncated arrays")
        arr = np.frombuffer(body, dtype="<f8", count=n_floats, offset=pos).astype(np.float64)
        weights = arr[:k]
        means = arr[k : k + k * d].reshape(k, d)
        covs = arr[k + k * d :].reshape(k, d, d)
        transform = None
        if flags & _FLAG_TRANSFORM:
            if end + 4 > len(body):
                raise ValueError("corrupt mixture data: missing transform")
            (length,) = struct.unpack_from("<I", body, end)
            if end + 4 + length != len(body):
                raise ValueError("corrupt mixture data: bad transform length")
            transform = _transform_from_json(body[end + 4 :])
        elif end != len(body):
            raise ValueError("corrupt mixture data: trailing bytes")
        return cls(weights, means, covs, lower_bound, int(n_iter), transform)


@lru_cache(maxsize=1024)
def _transform_from_json(blob: bytes) -> FeatureTransform:
    """The transform a model blob stores, parsed once per distinct blob.

    A library's photos share a handful of transforms (one common space, a few working
    image sizes), and parsing one costs about as much as the rest of a model, so the
    parsed transforms are shared; their arrays are made read-only for that.
    """
    try:
        transform = FeatureTransform.from_dict(json.loads(blob.decode()))
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"corrupt mixture data: bad transform ({exc})") from exc
    transform.offset.flags.writeable = False
    transform.matrix.flags.writeable = False
    return transform


def _unit_frame(t: FeatureTransform) -> np.ndarray:
    """Diagonal scaling from a transform's raw frame to the unit frame (positions / size)."""
    scale = np.ones(t.dim)
    scale[0] = 1.0 / t.width
    scale[1] = 1.0 / t.height
    return scale


def average_mixture(mixtures: Sequence[Mixture]) -> Mixture:
    """The equal-weight mixture of ``mixtures``: weights divided by N, components pooled.

    Without transforms the components are concatenated as they are (all mixtures must
    then share their model coordinates).  With transforms, every component is first
    mapped to the raw coordinates of its photo, and positions are divided by that
    photo's width and height, so photos of any size and aspect share the unit square.
    The result gets one common transform: its raw frame is a canvas of the rounded mean
    width and height of the inputs, and its model coordinates standardize the pooled
    mixture (offset = pooled mean, matrix = diag(1 / pooled standard deviation)), so it
    is well scaled and renders like the inputs.  All inputs must share a colour space,
    because colour spaces are related non-linearly.

    Parameters
    ----------
    mixtures : sequence of Mixture

    Returns
    -------
    Mixture
        With ``lower_bound`` nan and ``n_iter`` 0.
    """
    mixtures = list(mixtures)
    if not mixtures:
        raise ValueError("average_mixture needs at least one mixture")
    dims = {m.dim for m in mixtures}
    if len(dims) != 1:
        raise ValueError(f"mixtures of different dimensions: {sorted(dims)}")
    n = len(mixtures)
    weights = np.concatenate([m.weights / m.weights.sum() for m in mixtures]) / n
    has_t = [m.transform is not None for m in mixtures]
    if not any(has_t):
        return Mixture(
            weights,
            np.concatenate([m.means for m in mixtures]),
            np.concatenate([m.covariances for m in mixtures]),
        )
    if not all(has_t):
        raise ValueError("cannot average mixtures with and without feature transforms")
    spaces = {m.transform.colour_space for m in mixtures}
    if len(spaces) != 1:
        raise ValueError(f"cannot average mixtures in different colour spaces: {sorted(spaces)}")
    width = max(1, round(float(np.mean([m.transform.width for m in mixtures]))))
    height = max(1, round(float(np.mean([m.transform.height for m in mixtures]))))
    canvas = FeatureTransform(
        np.zeros(next(iter(dims))), np.eye(next(iter(dims))), spaces.pop(), width, height
    )
    to_canvas = 1.0 / _unit_frame(canvas)
    means, covs = [], []
    for m in mixtures:
        mu, cov = m.raw_components()
        s = _unit_frame(m.transform) * to_canvas
        means.append(mu * s)
        covs.append(cov * s[:, None] * s[None, :])
    pooled = Mixture(weights, np.concatenate(means), np.concatenate(covs), transform=canvas)
    mean, cov = pooled.moments()
    std = np.sqrt(np.maximum(np.diag(cov), np.finfo(float).tiny))
    common = FeatureTransform(mean, np.diag(1.0 / std), canvas.colour_space, width, height)
    # The canvas transform is the identity, so standardizing the pooled components
    # directly gives the model in the common transform's coordinates.
    return Mixture(
        weights,
        (pooled.means - mean) / std,
        pooled.covariances / std[:, None] / std[None, :],
        transform=common,
    )
