"""Noise samplers that resist the floating-point attack on the Laplace mechanism.

Mironov (2012) showed that textbook Laplace noise computed in floating point (``mu + b*log(U)``)
leaks the input through *which* doubles can come out: the set of reachable outputs depends on
``mu``, so one release can reveal the exact input. The remedy used here for the ``laplace``,
``gaussian`` and ``identity-only`` mechanisms is **discrete noise on a grid**: the clipped latent
is rounded to a grid of step ``g = 2**-k`` and integer-valued noise (in units of ``g``) is added.
Every possible output is a grid point whatever the input, so there is no such side channel, and
the integer noise is drawn by the *exact* samplers of Canonne, Kamath & Steinke (2020,
"The Discrete Gaussian for Differential Privacy", Algorithms 1-3): only integer arithmetic and
uniform random integers, no floating point anywhere, so the output distribution is exactly the
stated discrete Laplace / discrete Gaussian.

The randomness is a ``numpy.random.Generator``; ``make_rng(None)`` seeds it from the operating
system's entropy pool (``secrets``), and a fixed seed is accepted only with a warning (tests).
"""

from __future__ import annotations

import secrets
import warnings
from fractions import Fraction

import numpy as np


def make_rng(seed: int | None) -> np.random.Generator:
    """OS-entropy generator, or a seeded one (for tests only: warns)."""
    if seed is None:
        return np.random.Generator(np.random.PCG64(secrets.randbits(128)))
    warnings.warn(
        f"privacy noise seeded with a fixed seed ({seed}): reproducible noise is for tests only "
        "and gives no privacy",
        stacklevel=3,
    )
    return np.random.Generator(np.random.PCG64(seed))


def randbelow(rng: np.random.Generator, n: int) -> int:
    """A uniform integer in [0, n) for any positive Python int ``n`` (rejection sampling, exact)."""
    if n <= 0:
        raise ValueError("randbelow needs n > 0")
    if n == 1:
        return 0
    if n <= 1 << 62:
        return int(rng.integers(0, n))
    bits = (n - 1).bit_length()
    nbytes = (bits + 7) // 8
    while True:
        r = int.from_bytes(rng.bytes(nbytes), "little") >> (8 * nbytes - bits)
        if r < n:
            return r


def bernoulli(rng: np.random.Generator, p: Fraction) -> bool:
    """Exact Bernoulli(p) for a rational p in [0, 1]."""
    return randbelow(rng, p.denominator) < p.numerator


def bernoulli_exp(rng: np.random.Generator, gamma: Fraction) -> bool:
    """Exact Bernoulli(exp(-gamma)) for a rational gamma >= 0 (CKS 2020, Algorithm 1)."""
    if gamma < 0:
        raise ValueError("gamma must be >= 0")
    while gamma > 1:
        if not bernoulli_exp(rng, Fraction(1)):
            return False
        gamma -= 1
    k = 1
    num, den = gamma.numerator, gamma.denominator
    while randbelow(rng, den * k) < num:  # Bernoulli(gamma / k)
        k += 1
    return k % 2 == 1


def discrete_laplace(rng: np.random.Generator, scale: Fraction) -> int:
    """Exact sample with P(x) proportional to exp(-|x| / scale), x an integer (CKS Algorithm 2)."""
    scale = Fraction(scale)
    if scale <= 0:
        raise ValueError("scale must be > 0")
    t, s = scale.numerator, scale.denominator  # scale = t / s
    while True:
        u = randbelow(rng, t)
        if not bernoulli_exp(rng, Fraction(u, t)):
            continue
        v = 0
        while bernoulli_exp(rng, Fraction(1)):
            v += 1
        y = (u + t * v) // s
        negative = randbelow(rng, 2) == 1
        if negative and y == 0:
            continue
        return -y if negative else y


def discrete_gaussian(rng: np.random.Generator, sigma2: Fraction) -> int:
    """Exact sample with P(x) proportional to exp(-x^2 / (2 sigma2)) (CKS Algorithm 3)."""
    sigma2 = Fraction(sigma2)
    if sigma2 <= 0:
        raise ValueError("sigma2 must be > 0")
    t = _isqrt_floor(sigma2) + 1
    while True:
        y = discrete_laplace(rng, Fraction(t))
        gamma = (abs(y) - sigma2 / t) ** 2 / (2 * sigma2)
        if bernoulli_exp(rng, gamma):
            return y


def _isqrt_floor(q: Fraction) -> int:
    """floor(sqrt(q)) for a non-negative rational, exactly."""
    r = int(np.floor(np.sqrt(float(q))))
    while Fraction(r * r) > q:
        r -= 1
    while Fraction((r + 1) * (r + 1)) <= q:
        r += 1
    return r


def discrete_laplace_array(rng: np.random.Generator, scale: Fraction, n: int) -> np.ndarray:
    return np.fromiter((discrete_laplace(rng, scale) for _ in range(n)), dtype=np.int64, count=n)


def discrete_gaussian_array(rng: np.random.Generator, sigma2: Fraction, n: int) -> np.ndarray:
    return np.fromiter((discrete_gaussian(rng, sigma2) for _ in range(n)), dtype=np.int64, count=n)
