"""Scores of generated melodies against real ones (C-RNN-GAN, Mogren 2016, section 4).

Melodies are (N, T, 3) note events in musical units (pitch as MIDI number, duration and
delta in quarter lengths: ``data.music.samples_to_notes``), or a list of (T_i, 3) arrays; a
4th column is the MIDI velocity (``data.options.velocity``).

Per set (the mean over its melodies):

- ``scale_consistency``: the fraction of a melody's notes in its best-fitting major scale
  (12 keys; a natural minor scale holds the same pitch classes as its relative major, so the
  24 major/minor scales are 12 sets).
- ``repetitions``: how many of a melody's pitch n-grams (n = 4 notes) already occurred earlier
  in it (a count per melody: positions i whose n-gram equals one that starts before i).
- ``tone_span``: highest minus lowest pitch of a melody, in semitones.
- ``polyphony``: the fraction of a melody's consecutive note pairs where the next note starts
  before the current one ends (delta_{i+1} < duration_i): how often two tones sound at once,
  C-RNN-GAN's polyphony for one note per event (a chord's notes start together: delta 0).
  A part read from a score keeps one note per onset, so real melodies overlap only where a
  held note outlasts the next onset (a second voice in the part); a generator that picks the
  duration and the next delta apart can overlap its own notes, and this counts it.

Against the real set:

- ``pitch_class_kl``: KL(real || generated) of the pitch-class histograms (12 bins over all
  notes, pitch mod 12), each smoothed by ``eps`` = 1e-6 and renormalized.
- ``pitch_class_distance``: the total variation distance of those histograms,
  0.5 * sum |p - q| (0 = same, 1 = disjoint).
- ``note_length_distance``: the total variation distance of the duration histograms over the
  bins of :data:`LENGTH_BINS` (1/16, 1/8, dotted 1/8, 1/4, dotted 1/4, 1/2, dotted 1/2, whole
  and longer).
- ``velocity_distance`` (when both sets have velocities): the total variation distance of
  the velocity histograms over MIDI's 8 dynamics bins of 16 (1-16 ppp ... 113-127 fff).
- ``copied_phrases``: the fraction of the set's phrases of :data:`PHRASE` = 8 consecutive
  notes (pitch and duration, in 1/48 quarters) that occur anywhere in the real set: a
  memorization check. Real melodies share phrases too (a chorale tune harmonized twice, a
  cadence formula), so read it against the real-vs-real row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ganforge.errors import GanforgeError

MAJOR = (0, 2, 4, 5, 7, 9, 11)
# duration bins in quarter lengths: a note of length d falls in the bin of the nearest label
LENGTH_BINS = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
_LENGTH_EDGES = np.array([0.0, 0.375, 0.625, 0.875, 1.25, 1.75, 2.5, 3.5, np.inf])
NGRAM = 4
PHRASE = 8
EPS = 1e-6
VELOCITY_EDGES = np.arange(0.5, 129.0, 16.0)  # 8 bins: 1-16, 17-32, ..., 113-127

Melodies = np.ndarray | Sequence[np.ndarray]


def _melodies(melodies: Melodies) -> list[np.ndarray]:
    out = []
    for m in melodies:
        m = np.asarray(m, dtype=np.float64)
        width = m.shape[-1] if m.ndim == 2 and m.shape[-1] in (3, 4) else 3
        out.append(m.reshape(-1, width))
    if not out or not any(len(m) for m in out):
        raise GanforgeError("no notes to score: give melodies as (N, T, 3) note events "
                            "(pitch, duration, delta[, velocity]) with T >= 1.")
    return out


def has_velocity(melodies: Melodies) -> bool:
    """Whether every melody has the 4th column (velocity)."""
    return all(m.shape[1] == 4 for m in _melodies(melodies))


def _pitches(m: np.ndarray) -> np.ndarray:
    return np.round(m[:, 0]).astype(np.int64)


def pitch_class_histogram(melodies: Melodies) -> np.ndarray:
    """(12,) fraction of all notes on each pitch class (C = 0, C# = 1, ...)."""
    pcs = np.concatenate([_pitches(m) % 12 for m in _melodies(melodies)])
    return np.bincount(pcs, minlength=12) / len(pcs)


def note_length_histogram(melodies: Melodies) -> np.ndarray:
    """(8,) fraction of all notes in each bin of :data:`LENGTH_BINS`."""
    durs = np.concatenate([m[:, 1] for m in _melodies(melodies)])
    counts, _ = np.histogram(durs, bins=_LENGTH_EDGES)
    return counts / len(durs)


def velocity_histogram(melodies: Melodies) -> np.ndarray:
    """(8,) fraction of all notes in each velocity bin (:data:`VELOCITY_EDGES`)."""
    vel = np.concatenate([m[:, 3] for m in _melodies(melodies)])
    counts, _ = np.histogram(vel, bins=VELOCITY_EDGES)
    return counts / len(vel)


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """0.5 * sum |p - q| of two histograms (each summing to 1)."""
    return float(0.5 * np.abs(np.asarray(p) - np.asarray(q)).sum())


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = EPS) -> float:
    """KL(p || q) = sum p log(p / q) (nats) after adding ``eps`` to each bin and renormalizing,
    so an empty bin of q gives a large but finite value."""
    p = np.asarray(p, dtype=np.float64) + eps
    q = np.asarray(q, dtype=np.float64) + eps
    p, q = p / p.sum(), q / q.sum()
    return float((p * np.log(p / q)).sum())


def scale_consistency(melodies: Melodies) -> float:
    """Mean over melodies of the fraction of notes in the best-fitting major (= relative
    natural minor) scale."""
    scores = []
    for m in _melodies(melodies):
        if not len(m):
            continue
        counts = np.bincount(_pitches(m) % 12, minlength=12)
        best = max(sum(counts[(k + s) % 12] for s in MAJOR) for k in range(12))
        scores.append(best / len(m))
    return float(np.mean(scores))


def repetitions(melodies: Melodies, n: int = NGRAM) -> float:
    """Mean over melodies of the number of positions whose pitch n-gram already started at an
    earlier position of the same melody."""
    counts = []
    for m in _melodies(melodies):
        p = _pitches(m)
        seen: set[tuple[int, ...]] = set()
        repeated = 0
        for i in range(len(p) - n + 1):
            gram = tuple(p[i:i + n])
            repeated += gram in seen
            seen.add(gram)
        counts.append(repeated)
    return float(np.mean(counts))


def tone_span(melodies: Melodies) -> float:
    """Mean over melodies of highest minus lowest pitch (semitones)."""
    return float(np.mean([np.ptp(_pitches(m)) for m in _melodies(melodies) if len(m)]))


def polyphony(melodies: Melodies, tol: float = 1e-6) -> float:
    """Mean over melodies (of 2 notes or more) of the fraction of consecutive note pairs
    (i, i + 1) with delta_{i+1} < duration_i - ``tol``: the next note starts while note i
    still sounds. NaN when no melody has 2 notes."""
    shares = [float(np.mean(m[1:, 2] < m[:-1, 1] - tol))
              for m in _melodies(melodies) if len(m) >= 2]
    return float(np.mean(shares)) if shares else float("nan")


def _phrase_keys(melodies: Melodies, n: int) -> np.ndarray:
    """One 64-bit key per run of ``n`` consecutive notes of each melody (pitch and duration
    quantized to 1/48 quarter), a polynomial hash that wraps around (collisions ~2^-64)."""
    keys = []
    for m in _melodies(melodies):
        if len(m) < n:
            continue
        token = (_pitches(m).astype(np.uint64) * np.uint64(1 << 20)
                 + np.round(m[:, 1] * 48).astype(np.int64).clip(0, (1 << 20) - 1)
                 .astype(np.uint64))
        windows = np.lib.stride_tricks.sliding_window_view(token, n)
        key = np.zeros(len(windows), dtype=np.uint64)
        with np.errstate(over="ignore"):
            for j in range(n):
                key = key * np.uint64(1_000_003) + windows[:, j] + np.uint64(j + 1)
        keys.append(key)
    return np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)


def copied_phrases(generated: Melodies, real: Melodies, n: int = PHRASE) -> float:
    """Fraction of ``generated``'s runs of ``n`` consecutive notes (pitch and duration) that
    occur somewhere in ``real`` (NaN when no melody has ``n`` notes)."""
    mine = _phrase_keys(generated, n)
    if not len(mine):
        return float("nan")
    return float(np.isin(mine, np.unique(_phrase_keys(real, n))).mean())


def melody_stats(melodies: Melodies) -> dict[str, float]:
    """The per-set scores: scale consistency, repetitions, tone span, polyphony."""
    return {"scale_consistency": scale_consistency(melodies),
            "repetitions": repetitions(melodies), "tone_span": tone_span(melodies),
            "polyphony": polyphony(melodies)}


def music_scores(generated: Melodies, real: Melodies) -> dict[str, Any]:
    """Distances of ``generated`` to ``real`` and the per-set scores of ``generated``."""
    pc_real, pc_gen = pitch_class_histogram(real), pitch_class_histogram(generated)
    return {
        "pitch_class_kl": kl_divergence(pc_real, pc_gen),
        "pitch_class_distance": total_variation(pc_real, pc_gen),
        "note_length_distance": total_variation(note_length_histogram(real),
                                                note_length_histogram(generated)),
        **melody_stats(generated),
        "copied_phrases": copied_phrases(generated, real),
    } | ({"velocity_distance": total_variation(velocity_histogram(real),
                                               velocity_histogram(generated))}
         if has_velocity(generated) and has_velocity(real) else {})


SCORE_COLUMNS = ("pitch_class_kl", "pitch_class_distance", "note_length_distance",
                 "scale_consistency", "repetitions", "tone_span", "polyphony",
                 "copied_phrases")

# printed when every row has it: the classifier (musicscore), velocities (velocity: true)
EXTRA_COLUMNS = ("velocity_distance", "discriminative")


def format_rows(rows: dict[str, dict[str, Any]]) -> str:
    """A plain-text table: one row per compared set (e.g. generated vs train, test vs train)."""
    width = max(len(k) for k in rows) + 2
    columns = [*SCORE_COLUMNS,
               *(c for c in EXTRA_COLUMNS if all(c in s for s in rows.values()))]
    head = "".join(f"{c:>22s}" for c in columns)
    lines = [f"{'':{width}s}{head}"]
    for name, s in rows.items():
        lines.append(f"{name:{width}s}" + "".join(f"{s[c]:22.4f}" for c in columns))
    return "\n".join(lines)
