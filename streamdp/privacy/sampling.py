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

The uniform draws come from the operating system's CSPRNG (``make_rng(None)`` -> ``OsEntropy``:
``os.urandom`` read 4 KiB at a time, cut into integers by exact rejection), as in the reference
implementation of these samplers; a fixed seed (``make_rng(seed)``, a PCG64 stream) is accepted
only with a warning (tests). Any ``numpy.random.Generator`` is also accepted as a source.

Continuous draws (the metric mechanism's Gaussian direction and Gamma radius, the posterior
post-processing) need a ``numpy.random.Generator``: ``float_rng(source)`` gives one seeded with
128 fresh bits of the source for each use, so no PCG64 state outlives one release.
"""

from __future__ import annotations

import os
import threading
import warnings
from fractions import Fraction
from typing import Protocol, Union

import numpy as np


class UniformSource(Protocol):
    """Exact uniform integers: all the integer samplers need."""

    seeded: bool

    def randbelow(self, n: int) -> int: ...

    def randbits(self, k: int) -> int: ...


class _ByteSource:
    """Exact uniform integers from a source of uniform bytes (``_bytes``)."""

    seeded: bool

    def _bytes(self, nbytes: int) -> bytes:
        raise NotImplementedError

    def randbits(self, k: int) -> int:
        if k <= 0:
            return 0
        nbytes = (k + 7) // 8
        return int.from_bytes(self._bytes(nbytes), "little") >> (8 * nbytes - k)

    def randbelow(self, n: int) -> int:
        """A uniform integer in [0, n), exactly (rejection sampling on the fewest bits)."""
        if n <= 0:
            raise ValueError("randbelow needs n > 0")
        if n == 1:
            return 0
        k = (n - 1).bit_length()
        while True:
            r = self.randbits(k)
            if r < n:
                return r


class OsEntropy(_ByteSource):
    """Uniform integers from the OS CSPRNG (``os.urandom``), buffered.

    Why buffered: one ``os.urandom`` call per draw is a system call (~1 us); a 4 KiB buffer makes
    a draw a slice. The bytes are used once, in order, so the stream is exactly ``os.urandom``'s.
    """

    seeded = False
    _CHUNK = 4096

    def __init__(self) -> None:
        self._buf = b""
        self._pos = 0
        self._lock = threading.Lock()  # the noise reserve draws in its own thread (reserve.py)

    def _bytes(self, nbytes: int) -> bytes:
        with self._lock:
            if self._pos + nbytes > len(self._buf):
                self._buf = self._buf[self._pos :] + os.urandom(max(self._CHUNK, nbytes))
                self._pos = 0
            out = self._buf[self._pos : self._pos + nbytes]
            self._pos += nbytes
            return out


class GeneratorSource(_ByteSource):
    """A ``numpy.random.Generator`` as a ``UniformSource`` (seeded runs and tests)."""

    def __init__(self, gen: np.random.Generator, seeded: bool = True) -> None:
        self.gen = gen
        self.seeded = seeded

    def _bytes(self, nbytes: int) -> bytes:
        return self.gen.bytes(nbytes)

    def randbelow(self, n: int) -> int:
        if 1 < n <= 1 << 62:  # numpy's own exact bounded integers: the seeded streams stay as they were
            return int(self.gen.integers(0, n))
        return super().randbelow(n)


Source = Union[UniformSource, np.random.Generator]


def as_source(rng: Source) -> UniformSource:
    if isinstance(rng, np.random.Generator):
        return GeneratorSource(rng)
    return rng


def make_rng(seed: int | None) -> UniformSource:
    """The OS CSPRNG, or a seeded PCG64 stream (for tests only: warns)."""
    if seed is None:
        return OsEntropy()
    warnings.warn(
        f"privacy noise seeded with a fixed seed ({seed}): reproducible noise is for tests only "
        "and gives no privacy",
        stacklevel=3,
    )
    return GeneratorSource(np.random.Generator(np.random.PCG64(seed)))


def float_rng(rng: Source) -> np.random.Generator:
    """A generator for continuous draws: a seeded source's own stream, else a PCG64 seeded with 128
    fresh bits of the OS CSPRNG for this one use."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, GeneratorSource):
        return rng.gen
    return np.random.Generator(np.random.PCG64(rng.randbits(128)))


def randbelow(rng: Source, n: int) -> int:
    """A uniform integer in [0, n) for any positive Python int ``n`` (rejection sampling, exact)."""
    return as_source(rng).randbelow(n)


def bernoulli(rng: Source, p: Fraction) -> bool:
    """Exact Bernoulli(p) for a rational p in [0, 1]."""
    return as_source(rng).randbelow(p.denominator) < p.numerator


def bernoulli_exp(rng: Source, gamma: Fraction) -> bool:
    """Exact Bernoulli(exp(-gamma)) for a rational gamma >= 0 (CKS 2020, Algorithm 1)."""
    rng = as_source(rng)
    if gamma < 0:
        raise ValueError("gamma must be >= 0")
    while gamma > 1:
        if not bernoulli_exp(rng, Fraction(1)):
            return False
        gamma -= 1
    k = 1
    num, den = gamma.numerator, gamma.denominator
    while rng.randbelow(den * k) < num:  # Bernoulli(gamma / k)
        k += 1
    return k % 2 == 1


def discrete_laplace(rng: Source, scale: Fraction) -> int:
    """Exact sample with P(x) proportional to exp(-|x| / scale), x an integer (CKS Algorithm 2)."""
    rng = as_source(rng)
    scale = Fraction(scale)
    if scale <= 0:
        raise ValueError("scale must be > 0")
    t, s = scale.numerator, scale.denominator  # scale = t / s
    while True:
        u = rng.randbelow(t)
        if not bernoulli_exp(rng, Fraction(u, t)):
            continue
        v = 0
        while bernoulli_exp(rng, Fraction(1)):
            v += 1
        y = (u + t * v) // s
        negative = rng.randbelow(2) == 1
        if negative and y == 0:
            continue
        return -y if negative else y


def discrete_gaussian(rng: Source, sigma2: Fraction) -> int:
    """Exact sample with P(x) proportional to exp(-x^2 / (2 sigma2)) (CKS Algorithm 3)."""
    rng = as_source(rng)
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


def discrete_laplace_array(rng: Source, scale: Fraction, n: int) -> np.ndarray:
    rng = as_source(rng)
    return np.fromiter((discrete_laplace(rng, scale) for _ in range(n)), dtype=np.int64, count=n)


def discrete_gaussian_array(rng: Source, sigma2: Fraction, n: int) -> np.ndarray:
    rng = as_source(rng)
    return np.fromiter((discrete_gaussian(rng, sigma2) for _ in range(n)), dtype=np.int64, count=n)
