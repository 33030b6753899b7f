"""Music as note sequences, as C-RNN-GAN (Mogren 2016) models it: one row per note.

- ``music:bach``: the soprano part of the Bach pieces shipped (offline) in music21's corpus
  (MusicXML; pieces without a part named "Soprano" are skipped).
- ``music:essen`` (or ``music:folk``): the Essen folksongs shipped in music21's corpus (ABC
  files of many tunes each; every tune a piece, read as ABC 2.1: :data:`ESSEN_ABC_VERSION`).
  A tune music21 cannot read is left out with a warning.
- ``music:PATH``: a folder of the user's MIDI (.mid/.midi) or MusicXML (.mxl/.musicxml/.xml)
  files; the first part of each (``data.options.part``: another index, or a part name).

Each piece becomes note events ``(pitch, duration, delta)``: the MIDI pitch (the highest note
of a chord), the duration in quarter lengths (tied notes merged, grace notes dropped) and the
time since the previous note's onset (0 for the first note); ``velocity: true`` adds the
note's MIDI velocity as a 4th feature (MIDI files state one; scores do not, which is an
error naming the piece). music21 parses each piece once
(without its pickle cache: no file is ever unpickled; a progress display from 50 pieces on);
the events are cached as a plain ``.npz`` in ``cache_dir()`` keyed by the files (name, size,
mtime), the part, ``limit`` (Essen), music21's version and this parser's version.

Train / test are split by piece (a seeded permutation of the pieces in name order; the first
``round(test_fraction * pieces)`` are test), so no test melody overlaps a training window.
Notes longer than ``max_quarters`` (8: two 4/4 bars; 2 of the chorales' 21,160 soprano notes)
are clipped to it, and a rest longer than it (21 times in the chorales, up to 51 quarters where
the soprano pauses) cuts the piece into separate melodies, so the features keep a useful range.
Every window of ``seq_len`` consecutive notes inside a melody (step ``stride``) is a training
sequence; windows are shuffled with a seeded permutation. ``transpose: K`` (0 = off, at most
6) augments the training split: each training melody also appears shifted by every k in
-K..K semitones (K = 6: all twelve keys), and the scaling and pitch vocabulary cover the
shifted range, so both splits keep one encoding; the test split stays as written. Two encodings
(``data.options.encoding``):

- ``scaled`` (default, Mogren's): the 3 (4) features min-max scaled to [0, 1] over all pieces of
  the source (both splits, as the other sequence datasets scale the whole series) with
  :func:`~ganforge.data.sequences.minmax_apply`, for a sigmoid generator;
- ``onehot``: each feature one-hot over its vocabulary (:func:`note_vocab`: every MIDI pitch
  from the lowest to the highest of the source, and the durations / deltas that occur once
  quantized to the grid), three spans side by side, for a ``span_softmax`` generator. G then
  picks a pitch as a category (a note off the key is one more wrong class, not a small error
  of one number), and rhythms are the grid values the music uses. ``info["spans"]`` gives the
  widths, which ``span_softmax: {spans: spans}`` follows.

The scaling (both encodings) and the encoding's vocabulary go into ``info`` and the run's
``data.json``, so samples are written back in musical units (CSV, MIDI, MusicXML):
:func:`decode_notes`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.base import TensorData
from ganforge.data.registry import cache_dir, register_dataset
from ganforge.data.sequences import _check_split, minmax_apply, minmax_fit, minmax_invert
from ganforge.errors import DataError, GanforgeError
from ganforge.fileio import atomic_path
from ganforge.progress import Progress

FEATURES = ("pitch", "duration", "delta")
VELOCITY = "velocity"  # the 4th feature with data.options.velocity: true
ENCODINGS = ("scaled", "onehot")
MUSIC_SUFFIXES = (".mid", ".midi", ".mxl", ".musicxml", ".xml")
PARSER_VERSION = 2  # bump when the events a file gives change (invalidates the cache)
GRID = 0.25  # quantization of durations and onsets in quarter lengths (a sixteenth note)
MIDI_TICKS = 480  # ticks per quarter note in the MIDI files written
log = logging.getLogger("ganforge.data")

INSTALL = "pip install 'ganforge[music]' (music21 and mido)"


def _music21() -> Any:
    try:
        import music21
    except ImportError:
        raise DataError(f"music data needs music21: {INSTALL}.") from None
    return music21


# ------------------------------------------------------------------------------- parsing
def bach_files() -> list[Path]:
    """The MusicXML files of music21's Bach corpus, sorted by name."""
    corpus = _music21().corpus
    return sorted((Path(p) for p in corpus.getComposer("bach")
                   if Path(p).suffix.lower() in (".mxl", ".xml")), key=lambda p: p.name)


FOLK_NAMES = ("essen", "folk")  # music:essen, music:folk: the Essen folksongs
ESSEN_SKIP = ("test",)  # music21's own test files in essenFolksong (test0.abc, testd.abc, ...)


def essen_files() -> list[Path]:
    """The ABC files of music21's Essen folksong corpus (``essenFolksong``), sorted by name,
    without music21's test files."""
    corpus = _music21().corpus
    return sorted((Path(p) for p in corpus.getComposer("essenFolksong")
                   if Path(p).suffix.lower() == ".abc" and not Path(p).name.startswith(ESSEN_SKIP)),
                  key=lambda p: p.name)


def split_abc_tunes(text: str) -> list[tuple[str, str]]:
    """An ABC file -> [(reference number, tune text)]: one tune per ``X:`` line, each with the
    file header (the lines before the first ``X:``) in front, as ABC applies it to every tune."""
    header: list[str] = []
    tunes: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("X:"):
            tunes.append((line[2:].strip(), [*header, line]))
        elif tunes:
            tunes[-1][1].append(line)
        elif line.strip() and not line.startswith("%"):
            header.append(line)
    return [(ref, "\n".join(lines) + "\n") for ref, lines in tunes]


# The Essen files state no ABC version, and music21 reads such files as ABC 1.3, where an
# accidental holds for one note; the transcriptions mark it once per bar (altdeu10.abc #1, the
# Hildebrandslied in G, opens "G2 | _B2B2c2c2": G B-flat B-flat C C, not a chromatic B-flat B),
# as ABC 2.1 reads it: an accidental holds for the same pitch to the end of the bar.
ESSEN_ABC_VERSION = "%abc-2.1\n"


def essen_tunes(limit: int | None = None) -> list[tuple[str, str, Path]]:
    """(name ``FILE#X``, ABC text, file) of the Essen tunes in file order, the first ``limit``
    (reading only the files needed); each text is marked ABC 2.1 (:data:`ESSEN_ABC_VERSION`)."""
    out: list[tuple[str, str, Path]] = []
    for f in essen_files():
        text = f.read_text(encoding="utf-8", errors="replace")
        for ref, tune in split_abc_tunes(text):
            if limit is not None and len(out) >= limit:
                return out
            out.append((f"{f.name}#{ref}", ESSEN_ABC_VERSION + tune, f))
    return out


def parse_abc_tune(text: str, part: int | str) -> np.ndarray | None:
    """The events of one ABC tune (its chosen part; an ABC tune has one voice, part 0)."""
    c = _music21().converter.Converter()
    c.parseData(text, format="abc")
    stream = c.stream
    if "Opus" in stream.classes:  # more than one X: in the text: its first tune
        scores = list(stream.scores)
        if not scores:
            return None
        stream = scores[0]
    chosen = _choose_part(stream, part)
    return None if chosen is None else part_events(chosen)


def _choose_part(score: Any, part: int | str) -> Any:
    parts = list(getattr(score, "parts", [])) or [score]
    if isinstance(part, str):
        for p in parts:
            if part.lower() in str(p.partName or "").lower():
                return p
        return None
    return parts[part] if -len(parts) <= part < len(parts) else None


def part_events(stream: Any) -> np.ndarray:
    """A part -> (K, 4) float64 events (pitch, duration, delta, velocity); notes that start
    together (chords, voices) keep the highest pitch; zero-length (grace) notes are dropped.
    The velocity is the note's MIDI velocity (1-127) where the file states one (MIDI files),
    NaN where it does not (a score without velocities: the bundled MusicXML and ABC)."""
    by_onset: dict[float, tuple[int, float, float]] = {}
    for n in stream.stripTies().flatten().notes:
        dur = float(n.quarterLength)
        if dur <= 0:
            continue
        pitch = max(p.midi for p in n.pitches)
        onset = float(n.offset)
        vel = getattr(getattr(n, "volume", None), "velocity", None)
        if onset not in by_onset or pitch > by_onset[onset][0]:
            by_onset[onset] = (pitch, dur, np.nan if vel is None else float(vel))
    onsets = np.array(sorted(by_onset), dtype=np.float64)
    if len(onsets) == 0:
        return np.zeros((0, 4))
    rows = np.array([by_onset[o] for o in onsets], dtype=np.float64)
    delta = np.diff(onsets, prepend=onsets[0])
    return np.stack([rows[:, 0], rows[:, 1], delta, rows[:, 2]], axis=1)


def parse_piece(path: Path, part: int | str) -> np.ndarray | None:
    """The events of one file's chosen part; None when the file has no such part."""
    converter = _music21().converter
    c = converter.Converter()
    c.parseFile(path, forceSource=True, storePickle=False)  # music21's cache is pickles
    chosen = _choose_part(c.stream, part)
    return None if chosen is None else part_events(chosen)


def _cache_key(label: str, files: list[Path], part: int | str, extra: Any = None) -> Path:
    m21 = _music21()
    stamp = [(f.name, f.stat().st_size, int(f.stat().st_mtime)) for f in files]
    key = [PARSER_VERSION, m21.__version__, part, label, stamp]
    blob = json.dumps(key if extra is None else [*key, extra])  # the caches made before extra
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    return cache_dir() / f"music-{label}-{digest}.npz"


PROGRESS_PIECES = 50  # parsing at least this many pieces shows progress


def cached_events(cached: Path, names: list[str], parse: Callable[[int], np.ndarray | None],
                  strict: bool = True, shown: list[str] | None = None
                  ) -> tuple[list[str], list[np.ndarray]]:
    """(names, events) of the pieces ``parse(i)`` gives for each of ``names`` (None or no note:
    left out), parsed once with a progress display, then read back from the ``.npz`` cache
    (plain arrays, ``allow_pickle=False``). A piece music21 cannot read is a ``DataError``
    naming it (``shown``: how; default its name) when ``strict`` (the user's files), else it
    is left out with a warning (a bundled corpus)."""
    try:
        with np.load(cached, allow_pickle=False) as f:
            events, starts, stored = f["events"], f["starts"], f["names"]
        return [str(n) for n in stored], [events[a:b] for a, b in itertools.pairwise(starts)]
    except (OSError, ValueError, KeyError):
        pass
    t0 = time.perf_counter()
    kept, pieces, bad = [], [], []
    bar = Progress(len(names) >= PROGRESS_PIECES, len(names), 0, "parsing music", unit="piece")
    try:
        for i, name in enumerate(names):
            try:
                ev = parse(i)
            except Exception as exc:  # noqa: BLE001 - music21 raises many kinds on bad files
                bad.append((shown[i] if shown is not None else name, exc))
                ev = None
            if ev is not None and len(ev):
                kept.append(name)
                pieces.append(ev)
            bar.update()
    finally:
        bar.close()
    if bad:
        listing = "; ".join(f"'{n}' ({type(e).__name__}: {e})" for n, e in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        if strict:
            raise DataError(f"music21 cannot read {len(bad)} of {len(names)} files: {listing}"
                            f"{more}. Remove or fix these files.")
        log.warning("music21 cannot read %d of %d pieces, left out: %s%s", len(bad), len(names),
                    listing, more)
    log.info("parsed %d pieces (%d with notes in the part) in %.1f s", len(names), len(pieces),
             time.perf_counter() - t0)
    if pieces:
        starts = np.cumsum([0] + [len(p) for p in pieces]).astype(np.int64)
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached, suffix=".npz") as tmp:  # np.savez keeps a name ending .npz
                np.savez(tmp, events=np.concatenate(pieces), starts=starts,
                         names=np.array(kept, dtype=str))
        except OSError:
            pass  # a read-only home: keep working without the cache
    return kept, pieces


def _features(found: tuple[list[str], list[np.ndarray]], velocity: bool
              ) -> tuple[list[str], list[np.ndarray]]:
    names, pieces = found
    return names, [p[:, :4 if velocity else 3] for p in pieces]


def piece_events(label: str, files: list[Path], part: int | str, velocity: bool = False
                 ) -> tuple[list[str], list[np.ndarray]]:
    """(names, events per piece) of the files that have the part: (K, 3) pitch, duration,
    delta, or (K, 4) with ``velocity`` (NaN where a file states none); parsed once, then read
    back from the ``.npz`` cache (:func:`cached_events`)."""
    return _features(cached_events(_cache_key(label, files, part), [f.name for f in files],
                                   lambda i: parse_piece(files[i], part),
                                   shown=[str(f) for f in files]), velocity)


def essen_events(limit: int | None, part: int | str, velocity: bool = False
                 ) -> tuple[list[str], list[np.ndarray]]:
    """(names ``FILE#X``, events) of the Essen tunes (the first ``limit``; events as
    :func:`piece_events`); a tune music21 cannot read is left out with a warning."""
    tunes = essen_tunes(limit)
    files = sorted({f for _, _, f in tunes}, key=lambda p: p.name)
    return _features(cached_events(_cache_key("essen", files, part, [limit, len(tunes)]),
                                   [name for name, _, _ in tunes],
                                   lambda i: parse_abc_tune(tunes[i][1], part), strict=False),
                     velocity)


# ------------------------------------------------------------------ split and windows
def split_pieces(count: int, split: str, test_fraction: float, seed: int) -> list[int]:
    """The piece indices of a split: a seeded permutation of range(count); its first
    round(test_fraction * count) (at least 1 when test_fraction > 0 and count > 1) are test."""
    _check_split(split)
    if split == "all" or test_fraction <= 0:
        return list(range(count))
    n_test = min(count - 1, max(1, round(test_fraction * count))) if count > 1 else 0
    perm = np.random.RandomState(seed).permutation(count)
    chosen = perm[:n_test] if split == "test" else perm[n_test:]
    return sorted(int(i) for i in chosen)


def segment_piece(events: np.ndarray, max_quarters: float) -> list[np.ndarray]:
    """Durations clipped to ``max_quarters``; where more than ``max_quarters`` pass between two
    onsets (a long rest: the part pauses), the piece is cut and the next note starts a new
    melody (delta 0)."""
    ev = events.copy()
    ev[:, 1] = np.minimum(ev[:, 1], max_quarters)
    cuts = np.flatnonzero(ev[:, 2] > max_quarters)
    ev[cuts, 2] = 0.0
    return [seg for seg in np.split(ev, cuts) if len(seg)]


def transposed(melodies: list[np.ndarray], semitones: int) -> list[np.ndarray]:
    """``melodies`` followed by their copies shifted by k = -semitones..semitones (k != 0, in
    that order), pitch only; shifts that would leave MIDI's 0..127 are skipped per melody."""
    out = list(melodies)
    for k in range(-semitones, semitones + 1):
        for m in melodies:
            if k and len(m) and 0 <= m[:, 0].min() + k and m[:, 0].max() + k <= 127:
                shift = np.zeros(m.shape[1])
                shift[0] = k
                out.append(m + shift)
    return out


def piece_windows(pieces: list[np.ndarray], seq_len: int, stride: int) -> np.ndarray:
    """Every window of seq_len consecutive notes inside each piece (start step ``stride``), in
    order: (W, seq_len, F) for pieces of F features."""
    out = [p[s:s + seq_len] for p in pieces for s in range(0, len(p) - seq_len + 1, stride)]
    width = pieces[0].shape[1] if pieces else len(FEATURES)
    return np.stack(out) if out else np.zeros((0, seq_len, width))


def note_vocab(events: np.ndarray, grid: float = GRID) -> dict[str, list[float]]:
    """The one-hot vocabulary of note events (K, 3) or (K, 4): every MIDI pitch from the lowest
    to the highest, the distinct durations and deltas once quantized to ``grid`` and, with a
    4th column, the distinct velocities."""
    q = quantize_notes(events, grid)
    vocab = {"pitch": [float(p) for p in range(int(q[:, 0].min()), int(q[:, 0].max()) + 1)],
             "duration": sorted({float(v) for v in q[:, 1]}),
             "delta": sorted({float(v) for v in q[:, 2]})}
    if q.shape[1] > len(FEATURES):
        vocab[VELOCITY] = sorted({float(v) for v in q[:, 3]})
    return vocab


def vocab_features(vocab: dict[str, list[float]]) -> tuple[str, ...]:
    """The features a vocabulary covers, in column order (velocity last where it has one)."""
    return (*FEATURES, VELOCITY) if VELOCITY in vocab else FEATURES


def vocab_spans(vocab: dict[str, list[float]]) -> list[int]:
    return [len(vocab[f]) for f in vocab_features(vocab)]


def onehot_encode(events: np.ndarray, vocab: dict[str, list[float]], grid: float = GRID
                  ) -> np.ndarray:
    """(..., 3 or 4) note events -> (..., sum of spans) one-hot rows (quantized to ``grid``
    first; every value must be in ``vocab``)."""
    q = quantize_notes(events, grid)
    parts = []
    for f, name in enumerate(vocab_features(vocab)):
        values = np.asarray(vocab[name])
        idx = np.searchsorted(values, q[..., f])
        if np.any(idx >= len(values)) or np.any(values[np.minimum(idx, len(values) - 1)]
                                                != q[..., f]):
            raise DataError(f"a note's {name} is outside the one-hot vocabulary of this data; "
                            f"the vocabulary is built from every piece of the source.")
        parts.append(np.eye(len(values), dtype=np.float32)[idx])
    return np.concatenate(parts, axis=-1)


def onehot_decode(x: np.ndarray, vocab: dict[str, list[float]]) -> np.ndarray:
    """(..., sum of spans) one-hot (or softmax) rows -> (..., 3) note events (4 with a
    velocity vocabulary): the value of each span's largest entry."""
    x = np.asarray(x)
    widths = vocab_spans(vocab)
    cols = np.split(x, np.cumsum(widths)[:-1], axis=-1)
    return np.stack([np.asarray(vocab[name], dtype=np.float64)[c.argmax(-1)]
                     for name, c in zip(vocab_features(vocab), cols, strict=True)], axis=-1)


def _option_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise DataError(f"data.options.{name} for music data must be an integer >= {low}, "
                        f"got {value!r}.")
    return value


@register_dataset("music:")
def music(path: str, split: str = "all", seq_len: int = 32, stride: int = 1, seed: int = 0,
          test_fraction: float = 0.1, limit: int | None = None, part: int | str | None = None,
          max_quarters: float = 8.0, encoding: str = "scaled", transpose: int = 0,
          velocity: bool = False) -> TensorData:
    """Melodies as windows of ``seq_len`` notes (pitch, duration, delta), scaled to [0, 1] or
    one-hot (``encoding``): ``music:bach`` (soprano of music21's Bach chorales) or
    ``music:FOLDER`` of MIDI/MusicXML files (first part, or ``part``). ``limit`` keeps the
    first pieces (by file name); notes longer than ``max_quarters`` are clipped to it and rests
    longer than it cut a piece into melodies (:func:`segment_piece`). ``transpose`` adds the
    training melodies shifted by -transpose..transpose semitones (:func:`transposed`).
    ``velocity`` adds each note's MIDI velocity as a 4th feature (files that state one)."""
    _check_split(split)
    if encoding not in ENCODINGS:
        raise DataError(f"data.options.encoding for music data must be one of "
                        f"{', '.join(ENCODINGS)}, got {encoding!r}.")
    seq_len = _option_int("seq_len", seq_len, 2)
    stride = _option_int("stride", stride, 1)
    if limit is not None:
        limit = _option_int("limit", limit, 1)
    transpose = _option_int("transpose", transpose, 0)
    if transpose > 6:
        raise DataError(f"data.options.transpose is the largest shift in semitones (6 reaches "
                        f"all twelve keys), got {transpose}; use 0-6.")
    if isinstance(max_quarters, bool) or not isinstance(max_quarters, (int, float)) or \
            max_quarters <= 0:
        raise DataError(f"data.options.max_quarters must be a positive number of quarter "
                        f"notes (8 = two 4/4 bars), got {max_quarters!r}.")
    if not isinstance(velocity, bool):
        raise DataError(f"data.options.velocity must be true or false, got {velocity!r}.")
    if not isinstance(test_fraction, (int, float)) or not 0 <= test_fraction < 1:
        raise DataError(f"data.options.test_fraction must be in [0, 1), got {test_fraction!r}.")
    if path in FOLK_NAMES:
        label, files = "essen", []
        part = 0 if part is None else part
    elif path == "bach":
        label, files = "bach", bach_files()
        part = "soprano" if part is None else part
    else:
        root = Path(path).expanduser()
        if not root.is_dir():
            raise DataError(f"music folder '{path}' does not exist. Give data.source as "
                            f"music:bach, music:essen (or music:folk) or music:FOLDER with "
                            f"MIDI/MusicXML files.")
        files = sorted((p for p in root.rglob("*") if p.suffix.lower() in MUSIC_SUFFIXES
                        and p.is_file()), key=lambda p: str(p.relative_to(root)))
        if not files:
            raise DataError(f"music folder '{path}' holds no {', '.join(MUSIC_SUFFIXES)} files.")
        label, part = "folder", 0 if part is None else part
    if isinstance(part, bool) or not isinstance(part, (int, str)):
        raise DataError(f"data.options.part must be a part index or name, got {part!r}.")
    if label == "essen":
        names, pieces = essen_events(limit, part, velocity)
    else:
        names, pieces = piece_events(label, files if limit is None else files[:limit], part,
                                     velocity)
    if not pieces:
        raise DataError(f"no file of music:{path} has notes in part {part!r}; set "
                        f"data.options.part to a part index (0 = first) or a part name.")
    features = (*FEATURES, VELOCITY) if velocity else FEATURES
    silent = [names[i] for i, p in enumerate(pieces) if velocity and np.isnan(p[:, 3]).any()]
    if silent:
        raise DataError(f"data.options.velocity: {len(silent)} of {len(pieces)} pieces of "
                        f"music:{path} state no note velocity (e.g. '{silent[0]}'): scores "
                        f"(MusicXML, ABC, the bundled corpora) carry none, MIDI files do. "
                        f"Set velocity: false, or give a folder of MIDI files.")
    melodies = [segment_piece(p, float(max_quarters)) for p in pieces]
    # the scaling and the vocabulary cover every melody in every key the training split holds
    every_note = np.concatenate(transposed([seg for segs in melodies for seg in segs],
                                           transpose))
    scaling = minmax_fit(every_note)
    keep = split_pieces(len(pieces), split, float(test_fraction), seed)
    chosen = [seg for i in keep for seg in melodies[i]]
    if split == "train":
        chosen = transposed(chosen, transpose)
    windows = piece_windows(chosen, seq_len, stride)
    if len(windows) == 0:
        longest = max(len(pieces[i]) for i in keep) if keep else 0
        raise DataError(f"music:{path} ({split}): no piece has {seq_len} notes (the longest has "
                        f"{longest}); lower data.options.seq_len.")
    windows = windows[np.random.RandomState(seed).permutation(len(windows))]
    info: dict[str, Any] = {"scaling": scaling, "columns": list(features),
                            "music": {"grid": GRID, "pieces": [names[i] for i in keep],
                                      "encoding": encoding, "transpose": transpose,
                                      "velocity": velocity}}
    if encoding == "onehot":
        vocab = note_vocab(every_note)
        x = onehot_encode(windows, vocab)
        info["music"]["vocab"] = vocab
        info["spans"] = vocab_spans(vocab)
        info["columns"] = [f"{name}={v:g}" for name in features for v in vocab[name]]
    else:
        x = minmax_apply(windows, scaling)
    return TensorData(name=f"music:{path}", x=torch.from_numpy(x.astype(np.float32)),
                      kind="sequence", split=split, info=info)


# ------------------------------------------------------------------- samples -> notes
def quantize_notes(events: np.ndarray, grid: float = GRID) -> np.ndarray:
    """(..., 3) events in musical units -> pitch rounded into 0..127, duration rounded to the
    grid (at least one grid step), delta rounded to the grid (>= 0); a 4th column (velocity)
    rounded into MIDI's 1..127."""
    ev = np.asarray(events, dtype=np.float64)
    pitch = np.clip(np.round(ev[..., 0]), 0, 127)
    dur = np.maximum(grid, np.round(ev[..., 1] / grid) * grid)
    delta = np.maximum(0.0, np.round(ev[..., 2] / grid) * grid)
    cols = [pitch, dur, delta]
    if ev.shape[-1] > len(FEATURES):
        cols.append(np.clip(np.round(ev[..., 3]), 1, 127))
    return np.stack(cols, axis=-1)


def samples_to_notes(samples: np.ndarray, scaling: dict[str, Any], grid: float = GRID
                     ) -> np.ndarray:
    """Generated (N, T, 3) samples in [0, 1] -> quantized events in musical units."""
    return quantize_notes(minmax_invert(np.asarray(samples, dtype=np.float64), scaling), grid)


def decode_notes(x: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Samples (or real windows) of a music run as the networks see them -> quantized note
    events (N, T, 3) in musical units, by the run's encoding (``info``: the data's info or the
    run's ``data.json``; runs from before the encoding option are ``scaled``)."""
    music_info = info.get("music") or {}
    if music_info.get("encoding") == "onehot":
        return onehot_decode(x, music_info["vocab"])
    return samples_to_notes(x, info["scaling"], float(music_info.get("grid", GRID)))


def note_features(notes: np.ndarray, info: dict[str, Any]) -> np.ndarray:
    """Quantized note events (N, T, 3) -> the 3 features min-max scaled with the data's scaling:
    one representation for every encoding, in which the discriminative score compares real
    and generated melodies."""
    return minmax_apply(np.asarray(notes, dtype=np.float64), info["scaling"])


def timeline(melodies: np.ndarray | list[np.ndarray], gap: float = 4.0) -> np.ndarray:
    """Quantized melodies (each (T, 3) pitch, duration, delta) one after another -> (K, 3)
    rows (onset, pitch, duration) in quarter lengths, as written to MIDI / MusicXML; melodies
    with a 4th column (velocity) give (K, 4) rows (onset, pitch, duration, velocity).

    A melody's first note starts it (its delta is ignored); the next melody starts on the first
    multiple of 4 quarters at least ``gap`` after the previous one's last note ends. A melody
    sounds one onset at a time: a note is cut where the next later onset starts; notes that
    start together form a chord (a repeated pitch is written once, with its longest length and
    its loudest velocity)."""
    rows: list[tuple[float, ...]] = []
    start = 0.0
    width = 3
    for mel in melodies:
        mel = np.asarray(mel, dtype=np.float64)
        if len(mel) == 0:
            continue
        width = 4 if mel.shape[1] > len(FEATURES) else 3
        onsets = start + np.concatenate([[0.0], np.cumsum(mel[1:, 2])])
        distinct = np.unique(onsets)
        chord: dict[tuple[float, int], tuple[float, float]] = {}
        for onset, note in zip(onsets, mel, strict=True):
            dur = float(note[1])
            later = distinct[distinct > onset]
            if len(later):
                dur = min(dur, float(later[0] - onset))
            key = (float(onset), int(note[0]))
            vel = float(note[3]) if width == 4 else 0.0
            held, loud = chord.get(key, (0.0, 0.0))
            chord[key] = (max(held, dur), max(loud, vel))
        rows.extend((o, p, d, v)[:width] for (o, p), (d, v) in sorted(chord.items()))
        end = max(o + d for (o, _), (d, _) in chord.items())
        start = float(np.ceil((end + gap) / 4.0) * 4.0)
    return np.array(rows, dtype=np.float64).reshape(-1, width)


def _mido() -> Any:
    try:
        import mido
    except ImportError:
        raise GanforgeError(f"writing MIDI needs mido: {INSTALL}.") from None
    return mido


def write_midi(notes: np.ndarray, out: str | Path, tempo_bpm: float = 100.0,
               velocity: int = 80) -> Path:
    """Write timeline rows (onset, pitch, duration) as a type-0 MIDI file (piano, channel 0),
    every note at ``velocity``; rows (onset, pitch, duration, velocity) give each its own."""
    mido = _mido()
    notes = np.asarray(notes, dtype=np.float64)
    loud = (np.clip(np.round(notes[:, 3]), 1, 127) if notes.ndim == 2 and notes.shape[1] > 3
            else np.full(len(notes), velocity))
    events = []  # (tick, order, message): note-offs before note-ons at the same tick
    for (onset, pitch, dur), vel in zip(notes[:, :3], loud, strict=True):
        on = round(onset * MIDI_TICKS)
        off = round((onset + dur) * MIDI_TICKS)
        events.append((on, 1, mido.Message("note_on", note=int(pitch), velocity=int(vel))))
        events.append((off, 0, mido.Message("note_off", note=int(pitch), velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo_bpm), time=0))
    track.append(mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    f = mido.MidiFile(type=0, ticks_per_beat=MIDI_TICKS)
    f.tracks.append(track)
    out = Path(out)
    with atomic_path(out) as tmp:
        f.save(str(tmp))
    return out


def read_midi(path: str | Path, velocity: bool = False) -> np.ndarray:
    """A MIDI file -> (K, 3) rows (onset, pitch, duration) in quarter lengths, sorted; with
    ``velocity``, (K, 4) rows ending in each note's note-on velocity."""
    mido = _mido()
    f = mido.MidiFile(str(path))
    rows, sounding = [], {}
    for track in f.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[msg.note] = (tick, msg.velocity)
            elif msg.type in ("note_off", "note_on") and msg.note in sounding:
                start, vel = sounding.pop(msg.note)
                rows.append((start / f.ticks_per_beat, msg.note,
                             (tick - start) / f.ticks_per_beat, vel))
    width = 4 if velocity else 3
    return np.array(sorted(r[:width] for r in rows), dtype=np.float64).reshape(-1, width)


def write_musicxml(notes: np.ndarray, out: str | Path) -> Path:
    """Write timeline rows (onset, pitch, duration) as MusicXML through music21 (4/4, rests
    filled in, chords where notes start together); rows with a 4th column (velocity) give
    each note (a chord: its loudest) that velocity."""
    try:
        m21 = _music21()
    except DataError as exc:
        raise GanforgeError(str(exc)) from None
    part = m21.stream.Part()
    part.insert(0, m21.meter.TimeSignature("4/4"))
    notes = np.asarray(notes, dtype=np.float64)
    by_onset: dict[float, list[tuple[int, float, float]]] = {}
    for row in notes:
        vel = float(row[3]) if len(row) > 3 else np.nan
        by_onset.setdefault(float(row[0]), []).append((int(row[1]), float(row[2]), vel))
    for onset, group in sorted(by_onset.items()):
        dur = max(d for _, d, _ in group)
        if len(group) == 1:
            el = m21.note.Note(group[0][0], quarterLength=dur)
        else:
            el = m21.chord.Chord([p for p, _, _ in group], quarterLength=dur)
        loudest = max(v for _, _, v in group)
        if not np.isnan(loudest):
            el.volume.velocity = round(loudest)
        part.insert(onset, el)
    score = m21.stream.Score([part])
    out = Path(out)
    score.write("musicxml", fp=str(out))
    return out


def read_musicxml(path: str | Path, velocity: bool = False) -> np.ndarray:
    """A MusicXML file -> (K, 3) rows (onset, pitch, duration) of its first part, sorted; with
    ``velocity``, (K, 4) rows ending in each note's velocity (NaN where it states none)."""
    m21 = _music21()
    c = m21.converter.Converter()
    c.parseFile(Path(path), forceSource=True, storePickle=False)
    part = _choose_part(c.stream, 0)
    rows = []
    for n in part.stripTies().flatten().notes:
        vel = n.volume.velocity
        rows.extend((float(n.offset), p.midi, float(n.quarterLength),
                     np.nan if vel is None else float(vel)) for p in n.pitches)
    width = 4 if velocity else 3
    return np.array(sorted(r[:width] for r in rows), dtype=np.float64).reshape(-1, width)


MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (".musicxml",)


AUDIO_SUFFIXES = (".wav",)


def melody_notes(samples: np.ndarray, out: str | Path, info: dict[str, Any]) -> np.ndarray:
    """Generated samples of a music run (its ``data.json`` as ``info``) -> quantized note
    events (N, T, 3) in musical units; a clear error naming ``out`` for a run whose data is
    not music."""
    scaling, music_info = info.get("scaling"), info.get("music")
    if not scaling or not isinstance(music_info, dict):
        raise GanforgeError(f"'{out}': MIDI, MusicXML and WAV are written for music runs (data "
                            f"music:bach, music:essen or music:FOLDER); this run's data is "
                            f"'{info.get('source')}' ({info.get('kind')}). Use .npy, .csv or "
                            f".png instead.")
    return decode_notes(samples, info)


def write_melodies(samples: np.ndarray, out: str | Path, info: dict[str, Any]) -> Path:
    """Generated samples of a music run (its ``data.json`` as ``info``) -> a MIDI or MusicXML
    file by the suffix: one melody after another, quantized to the run's grid."""
    notes = timeline(melody_notes(samples, out, info))
    out = Path(out)
    if out.suffix.lower() in MIDI_SUFFIXES:
        return write_midi(notes, out)
    return write_musicxml(notes, out)
