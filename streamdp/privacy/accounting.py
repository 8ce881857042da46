"""Privacy over time: one release per track per release interval, and the ledger that sums it.

A video shows one face in many frames. Fresh noise in every frame would be T releases (T*epsilon by
composition), and an attacker averaging frames would remove the noise. Instead each track gets ONE
release per interval: the first frame of the interval is encoded, clipped and noised, and that
released latent is reused for every later frame of the interval (``TrackNoiseBank.release_for``).
The later frames are then post-processing of that one release (decoded with their own context and
keypoints, which are not protected anyway); a fresh release is drawn when the interval elapses.

.. warning::
   ``noise_for`` (reusing one *noise vector* while adding it to each frame's own latent) is NOT
   post-processing: the outputs ``z_t + n`` reveal the exact differences ``z_t - z_s`` between
   frames, which no finite epsilon covers. It exists for the mechanism contract and tests; the
   runtime must use ``release_for`` (or ``release_batch``), which reuses the released latent.

``PrivacyLedger`` counts releases per track and composes them: pure epsilon-DP mechanisms by basic
composition (k releases: k*epsilon), ``gaussian`` by adding zCDP rho and converting the total
to (epsilon, delta) once. A track is assumed to be one person; a person split over several tracks
(lost and re-detected) spends the sum of those tracks, bounded by ``all_tracks_one_person``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .release import LatentMechanism
from .zcdp import zcdp_to_dp
from .reserve import NoiseReserve


def _num(x: float) -> float | str:
    return x if math.isfinite(x) else "inf"


@dataclass
class _TrackAccount:
    releases: int = 0
    first_s: float | None = None
    last_s: float | None = None
    pixelated_frames: int = 0  # frames where the face was too small to model: pixelated, no epsilon


@dataclass
class PrivacyLedger:
    """Per-track release counts and their composed privacy cost."""

    mechanism: LatentMechanism
    release_interval_s: float | None = None
    tracks: dict[Hashable, _TrackAccount] = field(default_factory=dict)
    #: how the noise's draw time is kept from the output (``NoiseReserve.describe``), when known
    noise_timing: Callable[[], dict[str, Any]] | None = None

    def record(self, track: Hashable, time_s: float | None = None, releases: int = 1) -> None:
        acc = self.tracks.setdefault(track, _TrackAccount())
        acc.releases += releases
        if time_s is not None:
            acc.first_s = time_s if acc.first_s is None else min(acc.first_s, time_s)
            acc.last_s = time_s if acc.last_s is None else max(acc.last_s, time_s)

    def record_pixelated(self, track: Hashable, frames: int = 1) -> None:
        """Frames where this track's face was covered by pixelation instead (too small to model):
        covered, but no epsilon applies to them; the report shows them per track."""
        self.tracks.setdefault(track, _TrackAccount()).pixelated_frames += frames

    def releases(self, track: Hashable) -> int:
        acc = self.tracks.get(track)
        return acc.releases if acc else 0

    def spent(self, releases: int) -> tuple[float, float, float]:
        """(epsilon, delta, rho) of ``releases`` releases of this mechanism, composed."""
        if releases <= 0:
            return 0.0, 0.0, 0.0
        c = self.mechanism.cost()
        if not math.isfinite(c.epsilon):
            return math.inf, c.delta, math.inf
        if c.delta == 0.0:  # pure DP: basic composition
            return releases * c.epsilon, 0.0, releases * c.rho
        rho = releases * c.rho  # zCDP composes additively; convert once at the end
        return zcdp_to_dp(rho, c.delta), c.delta, rho

    def epsilon(self, track: Hashable) -> float:
        return self.spent(self.releases(track))[0]

    def report(self) -> dict[str, Any]:
        c = self.mechanism.cost()
        rows = []
        for key, acc in self.tracks.items():
            eps, dlt, rho = self.spent(acc.releases)
            rows.append(
                {
                    "track": _track_name(key),
                    "releases": acc.releases,
                    "epsilon": _num(eps),
                    "delta": dlt,
                    "rho": _num(rho),
                    "first_release_s": acc.first_s,
                    "last_release_s": acc.last_s,
                    "frames_pixelated_too_small": acc.pixelated_frames,
                }
            )
        worst = max(rows, key=lambda r: (r["releases"], r["track"]), default=None)
        total = sum(acc.releases for acc in self.tracks.values())
        eps_all, dlt_all, rho_all = self.spent(total)
        composition = (
            "none (no guarantee)"
            if not math.isfinite(c.epsilon)
            else "basic composition of pure epsilon-DP (k releases: k*epsilon)"
            if c.delta == 0.0
            else "zCDP: rho adds over releases, total converted to (epsilon, delta)"
        )
        return {
            "mechanism": self.mechanism.describe(),
            "scope": c.scope,
            "release_interval_s": None if self.release_interval_s is None else _num(self.release_interval_s),
            "composition": composition,
            "tracks": len(rows),
            "releases": total,
            "per_track": rows,
            "worst_case": None
            if worst is None
            else {k: worst[k] for k in ("track", "releases", "epsilon", "delta", "rho")},
            **({"noise_timing": self.noise_timing()} if self.noise_timing is not None else {}),
            "all_tracks_one_person": {"releases": total, "epsilon": _num(eps_all), "delta": dlt_all, "rho": _num(rho_all)},
            "notes": [
                "epsilon is per person only if each person is one track; a person split over several "
                "tracks spends the sum (bounded by all_tracks_one_person)",
                "context outside the face mask (hair, ears, background, clothing, pose, voice) is not "
                "protected by any epsilon",
                "frames_pixelated_too_small: frames where the track's face was too small to model and "
                "was pixelated instead: covered, but no epsilon applies to those frames",
            ],
        }


def without_privacy_if_seeded(report: dict[str, Any], seeded: bool) -> dict[str, Any]:
    """A run whose noise came from a fixed seed has no privacy (anyone with the seed removes the
    noise): every epsilon and rho becomes "inf", whatever the calibration was. The calibrated
    figures stay under ``calibrated_*`` for tests and comparisons."""
    if not seeded:
        return report
    out = dict(report)
    out["noise_source"] = "fixed seed (tests only): NO privacy, epsilon reported as inf"
    out["calibrated_worst_case"] = report.get("worst_case")
    rows = []
    for r in report.get("per_track", []):
        rows.append({**r, "epsilon": "inf", "rho": "inf", "calibrated_epsilon": r["epsilon"]})
    out["per_track"] = rows
    if report.get("worst_case"):
        out["worst_case"] = {**report["worst_case"], "epsilon": "inf", "rho": "inf"}
    if report.get("all_tracks_one_person"):
        out["all_tracks_one_person"] = {**report["all_tracks_one_person"], "epsilon": "inf", "rho": "inf"}
    return out


def _track_name(key: Hashable) -> str:
    if isinstance(key, tuple):
        return ":".join(str(k) for k in key)
    return str(key)


@dataclass
class _Slot:
    start_s: float
    noise: np.ndarray
    released: np.ndarray | None = None


class TrackNoiseBank:
    """One release per track per ``release_interval_s``; every later frame reuses it."""

    def __init__(self, mechanism: LatentMechanism, release_interval_s: float, ledger: PrivacyLedger | None = None) -> None:
        if not (release_interval_s > 0):
            raise ValueError("release_interval_s must be > 0")
        self.mechanism = mechanism
        self.interval = float(release_interval_s)
        self.ledger = ledger if ledger is not None else PrivacyLedger(mechanism, self.interval)
        # noise drawn ahead, each draw in a fixed time budget: release timing independent of it
        self.reserve = NoiseReserve(mechanism)
        weakref.finalize(self, self.reserve.close)
        self.ledger.noise_timing = self.reserve.describe
        self._slots: dict[Hashable, _Slot] = {}
        self.max_slots = 10000

    def _prune(self) -> None:
        """Forget the half of the slots that started longest ago (bounded memory on long streams).

        Safe for privacy: a forgotten track that comes back gets a fresh release, which the ledger
        counts; nothing is ever under-counted.
        """
        order = sorted(self._slots, key=lambda k: self._slots[k].start_s)
        for k in order[: len(order) // 2]:
            del self._slots[k]

    def _slot(self, track: Hashable, time_s: float | None) -> tuple[_Slot, bool]:
        slot = self._slots.get(track)
        fresh = (
            slot is None
            or time_s is None  # no clock (a still image): every call is its own release
            or time_s < slot.start_s  # the clock went backwards (a new stream with the same id)
            or time_s - slot.start_s >= self.interval
        )
        if fresh:
            if slot is None and len(self._slots) >= self.max_slots:
                self._prune()
            noise = self.reserve.take()
            slot = _Slot(time_s if time_s is not None else 0.0, noise)
            self._slots[track] = slot
            self.ledger.record(track, time_s)
        return slot, fresh

    def needs_latent(self, track: Hashable, time_s: float | None) -> bool:
        """Whether ``release_for(track, time_s, z)`` would use ``z`` (a new release is due).

        Later frames of an interval reuse the released latent, so their faces need no encoding.
        """
        slot = self._slots.get(track)
        return (
            slot is None
            or slot.released is None
            or time_s is None
            or time_s < slot.start_s
            or time_s - slot.start_s >= self.interval
        )

    def noise_for(self, track: Hashable, time_s: float | None) -> np.ndarray:
        """The interval's noise vector for ``track`` (drawn at the interval's first call).

        See the module warning: adding one noise vector to every frame's own latent is NOT
        post-processing; use ``release_for``.
        """
        return self._slot(track, time_s)[0].noise

    def release_for(self, track: Hashable, time_s: float | None, z_clipped: np.ndarray) -> np.ndarray:
        """The released latent (D,) for ``track`` at ``time_s``.

        At the interval's first call the latent ``z_clipped`` (D,) is clipped, noised and released;
        later calls in the interval return that same released latent and ignore their own ``z``.
        """
        slot, fresh = self._slot(track, time_s)
        if fresh or slot.released is None:
            z = np.asarray(z_clipped, dtype=np.float64).reshape(1, -1)
            slot.released = self.mechanism.release(self.mechanism.clip(z), slot.noise[None])[0]
        return slot.released

    def release_candidates(self, track: Hashable, time_s: float | None, z_clipped: np.ndarray, k: int) -> np.ndarray:
        """``k`` post-processed versions (k, D) of ONE release of ``track``: the first is what
        ``release_for`` returns; the others re-run the post-processing (a fresh posterior sample)
        on the same noisy output ``y`` with the same noise, so all k are functions of that one
        release and fresh randomness (no extra epsilon; the ledger counts one release)."""
        first = self.release_for(track, time_s, z_clipped)
        if k <= 1:
            return first[None]
        slot = self._slots[track]
        z = self.mechanism.clip(np.asarray(z_clipped, dtype=np.float64).reshape(1, -1))
        more = self.mechanism.release(np.repeat(z, k - 1, axis=0), np.repeat(slot.noise[None], k - 1, axis=0))
        return np.concatenate([first[None], more]).astype(np.float32)

    def release_batch(
        self, tracks: Sequence[Hashable], times_s: Sequence[float | None], z_clipped: np.ndarray
    ) -> np.ndarray:
        """``release_for`` row by row (rows in time order; one track may appear several times)."""
        z = np.asarray(z_clipped)
        if len(tracks) != len(z) or len(times_s) != len(z):
            raise ValueError("tracks, times_s and z_clipped must have the same length")
        out = np.empty((len(z), z.shape[1]), dtype=np.float32)
        for i, (t, ts) in enumerate(zip(tracks, times_s)):
            out[i] = self.release_for(t, ts, z[i])
        return out

    def drop(self, track: Hashable) -> None:
        """Forget a finished track's slot (its ledger entry stays)."""
        self._slots.pop(track, None)

    def __len__(self) -> int:
        return len(self._slots)
