"""Music (C-RNN-GAN): parsing music21's Bach chorales into note windows, MIDI / MusicXML
output, the music scores against hand-computed values, and the crnngan preset learning."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import re
import shutil
import wave
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import ganforge
from ganforge.api import load_config
from ganforge.cli import main as cli_main
from ganforge.data import load_dataset
from ganforge.data import music as music_data
from ganforge.data.music import (
    decode_notes,
    note_features,
    piece_events,
    quantize_notes,
    read_midi,
    read_musicxml,
    samples_to_notes,
    timeline,
    write_melodies,
    write_midi,
    write_musicxml,
)
from ganforge.data.sequences import minmax_invert
from ganforge.errors import DataError, GanforgeError
from ganforge.metrics.music import (
    SCORE_COLUMNS,
    copied_phrases,
    kl_divergence,
    music_scores,
    note_length_histogram,
    pitch_class_histogram,
    polyphony,
    repetitions,
    scale_consistency,
    tone_span,
    total_variation,
    velocity_histogram,
)
from ganforge.metrics.sequences import discriminative_score
from ganforge.monitor import music as music_audio
from ganforge.monitor.report import write_report
from ganforge.training.trainer import Trainer

pytest.importorskip("music21")
pytest.importorskip("mido")
pytestmark = pytest.mark.usefixtures("one_thread", "music_cache")  # conftest.py

# "Nimm von uns, Herr, du treuer Gott" (BWV 101/7, melody "Vater unser im Himmelreich"):
# the soprano's first bar and a half as printed, A4 A4 F4 G4 | A4 F4 E4 D4 | A4, all quarters.
BWV101_OPENING = [69, 69, 65, 67, 69, 65, 64, 62, 69]


@pytest.fixture(scope="module")
def _cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("music-cache")


@pytest.fixture
def music_cache(_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One parse cache per module (parsed once, read back by the next tests)."""
    monkeypatch.setenv("GANFORGE_CACHE", str(_cache_dir))
    return _cache_dir


def _first(names: list[str], pieces: list[np.ndarray], name: str) -> np.ndarray:
    return pieces[names.index(name)]


# ------------------------------------------------------------------------------ parsing
def test_bach_soprano_opening_is_parsed_as_printed() -> None:
    files = music_data.bach_files()[:3]
    assert [f.name for f in files] == ["bwv1.6.mxl", "bwv10.7.mxl", "bwv101.7.mxl"]
    names, pieces = piece_events("bach", files, "soprano")
    assert names == ["bwv1.6.mxl", "bwv10.7.mxl", "bwv101.7.mxl"]
    ev = _first(names, pieces, "bwv101.7.mxl")
    np.testing.assert_array_equal(ev[:9, 0], BWV101_OPENING)
    np.testing.assert_array_equal(ev[:9, 1], 1.0)  # quarters
    np.testing.assert_array_equal(ev[:9, 2], [0, 1, 1, 1, 1, 1, 1, 1, 1])
    # BWV 1/6 lists a horn first: the part named Soprano is taken, not the first part
    horn = music_data.parse_piece(files[0], 0)
    soprano = _first(names, pieces, "bwv1.6.mxl")
    assert len(horn) != len(soprano) or not np.array_equal(horn, soprano)
    assert music_data.parse_piece(files[0], "horn 2") is not None  # a part name, any case
    assert music_data.parse_piece(files[0], "viola da gamba") is None


def test_long_notes_are_clipped_and_long_rests_cut_melodies() -> None:
    ev = np.array([[60, 1, 0], [62, 12, 1], [64, 1, 12], [65, 1, 1], [67, 2, 9]], dtype=float)
    segs = music_data.segment_piece(ev, 8.0)
    assert len(segs) == 3
    np.testing.assert_array_equal(segs[0], [[60, 1, 0], [62, 8, 1]])
    np.testing.assert_array_equal(segs[1], [[64, 1, 0], [65, 1, 1]])
    np.testing.assert_array_equal(segs[2], [[67, 2, 0]])


def test_windows_split_by_piece_and_scaled(music_cache: Path) -> None:
    everything = load_dataset("music:bach", split="all", limit=3, seq_len=8)
    names, pieces = piece_events("bach", music_data.bach_files()[:3], "soprano")
    melodies = [music_data.segment_piece(p, 8.0) for p in pieces]
    lengths = [len(seg) for segs in melodies for seg in segs]
    assert len(everything) == sum(max(0, n - 8 + 1) for n in lengths)  # every 8-note window
    assert everything.shape == (8, 3) and everything.kind == "sequence"
    assert float(everything.x.min()) == pytest.approx(0.0, abs=1e-6)
    assert float(everything.x.max()) == pytest.approx(1.0, abs=1e-6)
    train = load_dataset("music:bach", split="train", limit=3, seq_len=8, test_fraction=0.34)
    test = load_dataset("music:bach", split="test", limit=3, seq_len=8, test_fraction=0.34)
    tr_pieces, te_pieces = train.info["music"]["pieces"], test.info["music"]["pieces"]
    assert len(te_pieces) == 1 and sorted(tr_pieces + te_pieces) == names
    assert train.info["scaling"] == test.info["scaling"] == everything.info["scaling"]
    assert len(train) + len(test) == len(everything)
    # every test window, scaled back, is 8 consecutive notes of the test piece
    held = melodies[names.index(te_pieces[0])]
    back = minmax_invert(test.x.double().numpy(), test.info["scaling"])
    for w in back:
        assert any(np.allclose(seg[s:s + 8], w, atol=1e-4)
                   for seg in held for s in range(len(seg) - 7)), "not a held-out window"
    # deterministic: the same split and order again
    again = load_dataset("music:bach", split="test", limit=3, seq_len=8, test_fraction=0.34)
    assert torch.equal(again.x, test.x)


def test_parse_cache_is_a_plain_npz_and_is_reused(music_cache: Path, monkeypatch) -> None:
    first = load_dataset("music:bach", split="all", limit=2)
    cached = sorted(music_cache.glob("music-bach-*.npz"))
    assert cached
    for path in cached:
        with np.load(path, allow_pickle=False) as f:  # no object arrays
            assert set(f.files) == {"events", "starts", "names"}

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again instead of reading the cache")

    monkeypatch.setattr(music_data, "parse_piece", no_parsing)
    assert torch.equal(load_dataset("music:bach", split="all", limit=2).x, first.x)


def test_music_folder_reads_the_users_midi_files(tmp_path: Path) -> None:
    folder = tmp_path / "songs"
    folder.mkdir()
    # (onset, pitch, duration): C D E F G (quarters, the G a half) and a melody with a rest
    a = np.array([[0, 60, 1], [1, 62, 1], [2, 64, 1], [3, 65, 1], [4, 67, 2]], dtype=float)
    b = np.array([[0, 72, 0.5], [0.5, 71, 0.5], [2, 69, 1], [3, 67, 1], [4, 65, 1]], dtype=float)
    (folder / "sub").mkdir()
    write_midi(a, folder / "a.mid")
    write_midi(b, folder / "sub" / "b.mid")
    data = load_dataset(f"music:{folder}", split="all", seq_len=5)
    _, pieces = piece_events("folder", [folder / "a.mid", folder / "sub" / "b.mid"], 0)
    np.testing.assert_array_equal(pieces[0], [[60, 1, 0], [62, 1, 1], [64, 1, 1], [65, 1, 1],
                                              [67, 2, 1]])
    np.testing.assert_array_equal(pieces[1], [[72, 0.5, 0], [71, 0.5, 0.5], [69, 1, 1.5],
                                              [67, 1, 1], [65, 1, 1]])
    assert len(data) == 2 and data.info["scaling"] == {"min": [60, 0.5, 0], "max": [72, 2, 1.5]}
    with pytest.raises(DataError, match="no piece has 6 notes"):
        load_dataset(f"music:{folder}", split="all", seq_len=6)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="holds no .mid"):
        load_dataset(f"music:{empty}")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(f"music:{tmp_path / 'nowhere'}")
    with pytest.raises(DataError, match="limit"):
        load_dataset(f"music:{folder}", limit=0)


def test_essen_folk_tunes_are_parsed_split_by_tune_and_cached(monkeypatch, caplog) -> None:
    tunes = music_data.essen_tunes(6)
    assert [n for n, _, _ in tunes] == [f"altdeu10.abc#{i}" for i in range(1, 7)]
    assert all(t.startswith("%abc-2.1\nX:") for _, t, _ in tunes)
    names, pieces = music_data.essen_events(6, 0)
    assert names == [n for n, _, _ in tunes]
    # "Das Hildebrandslied" (K: G, L: 1/4): G2 | _B2B2c2c2 | d4d4 | z2d4d2: the flat holds to
    # the bar line (G Bb Bb c c d d), halves and wholes in quarters, the half rest in a delta
    np.testing.assert_array_equal(pieces[0][:8], [[67, 2, 0], [70, 2, 2], [70, 2, 2],
                                                  [72, 2, 2], [72, 2, 2], [74, 4, 2],
                                                  [74, 4, 4], [74, 4, 6]])
    train = load_dataset("music:folk", split="train", limit=6, seq_len=8, test_fraction=0.34)
    test = load_dataset("music:essen", split="test", limit=6, seq_len=8, test_fraction=0.34)
    tr, te = train.info["music"]["pieces"], test.info["music"]["pieces"]
    assert len(te) == 2 and sorted(tr + te) == sorted(names)  # round(0.34 * 6) tunes held out
    melodies = {n: music_data.segment_piece(p, 8.0) for n, p in zip(names, pieces, strict=True)}
    for data, split in ((train, tr), (test, te)):
        assert len(data) == sum(max(0, len(seg) - 7) for n in split for seg in melodies[n])
    assert train.info["scaling"] == test.info["scaling"]

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again instead of reading the cache")

    monkeypatch.setattr(music_data, "parse_abc_tune", no_parsing)
    assert torch.equal(load_dataset("music:folk", split="test", limit=6, seq_len=8,
                                    test_fraction=0.34).x, test.x)
    # the file header goes in front of every tune; a tune music21 cannot read is left out
    text = "% a comment\nL:1/8\n\nX:1\nK:C\nCDEF|\n\nX: 2\nK:G\nGABc|\n"
    assert music_data.split_abc_tunes(text) == [("1", "L:1/8\nX:1\nK:C\nCDEF|\n\n"),
                                                ("2", "L:1/8\nX: 2\nK:G\nGABc|\n")]

    def parse(i: int) -> np.ndarray:
        if i == 1:
            raise ValueError("bad tune")
        return np.array([[60.0 + i, 1, 0]])

    cache = music_data.cache_dir() / "music-test-lenient.npz"
    with caplog.at_level("WARNING", logger="ganforge.data"):
        kept, evs = music_data.cached_events(cache, ["a", "b", "c"], parse, strict=False)
    assert kept == ["a", "c"] and [e[0, 0] for e in evs] == [60, 62]
    assert "cannot read 1 of 3 pieces" in caplog.text and "'b' (ValueError: bad tune)" in caplog.text


# ------------------------------------------------------------------------------- output
def test_quantize_and_midi_round_trip(tmp_path: Path) -> None:
    raw = np.array([[[60.4, 1.1, 9.0], [61.6, 0.4, 1.02], [64.0, 3.0, 0.49], [64.2, 0.1, 0.0]],
                    [[70.0, 0.5, 0.0], [-3.0, 0.5, 0.6], [140.0, 2.0, 0.5], [67.0, 1.0, 0.5]]])
    q = quantize_notes(raw)
    np.testing.assert_array_equal(q[0], [[60, 1.0, 9.0], [62, 0.5, 1.0], [64, 3.0, 0.5],
                                         [64, 0.25, 0.0]])
    np.testing.assert_array_equal(q[1, :, 0], [70, 0, 127, 67])
    notes = timeline(q)
    # melody 1: onsets 0, 1, 1.5, 1.5 (its first delta is ignored); both 64s start at 1.5:
    # one note, the longer (3); it ends at 4.5, so melody 2 starts on the first bar line at
    # least 4 quarters later (12); there the 127 (2 quarters) is cut at the next onset (13.5)
    np.testing.assert_array_equal(notes, [[0, 60, 1], [1, 62, 0.5], [1.5, 64, 3],
                                          [12, 70, 0.5], [12.5, 0, 0.5], [13, 127, 0.5],
                                          [13.5, 67, 1]])
    write_midi(notes, tmp_path / "m.mid")
    np.testing.assert_array_equal(read_midi(tmp_path / "m.mid"), notes)


def test_musicxml_round_trip(tmp_path: Path) -> None:
    mel = np.array([[[72, 1.5, 0], [71, 0.5, 1.5], [69, 1, 0.5], [67, 2, 1], [67, 1.25, 2]]])
    notes = timeline(mel)
    write_musicxml(notes, tmp_path / "m.musicxml")
    back = read_musicxml(tmp_path / "m.musicxml")
    np.testing.assert_array_equal(back, [[0, 72, 1.5], [1.5, 71, 0.5], [2, 69, 1],
                                         [3, 67, 2], [5, 67, 1.25]])


def _velocity_folder(root: Path, pieces: int = 8, notes: int = 48) -> Path:
    """MIDI files of eighth notes on C major pitches, loud on the beat (100-108) and soft off it
    (40-44), each with its own random pitches and velocities."""
    folder = root / "dynamics"
    folder.mkdir()
    rng = np.random.RandomState(0)
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    for k in range(pieces):
        rows = [(0.5 * i, rng.choice(scale), 0.5,
                 rng.choice([100, 104, 108]) if i % 2 == 0 else rng.choice([40, 44]))
                for i in range(notes)]
        write_midi(np.array(rows, dtype=float), folder / f"p{k}.mid")
    return folder


def test_midi_velocities_are_a_fourth_feature_written_back(tmp_path: Path) -> None:
    folder = _velocity_folder(tmp_path, pieces=2, notes=8)
    files = sorted(folder.glob("*.mid"))
    _, plain = piece_events("folder", files, 0)
    _, loud = piece_events("folder", files, 0, velocity=True)
    written = read_midi(files[0], velocity=True)  # (onset, pitch, duration, velocity)
    assert plain[0].shape == (8, 3) and loud[0].shape == (8, 4)
    np.testing.assert_array_equal(loud[0][:, :3], plain[0])
    np.testing.assert_array_equal(loud[0][:, 3], written[:, 3])
    assert set(written[::2, 3]) <= {100, 104, 108} and set(written[1::2, 3]) <= {40, 44}
    data = load_dataset(f"music:{folder}", split="all", seq_len=4, velocity=True)
    assert data.shape == (4, 4) and data.info["columns"][-1] == "velocity"
    assert data.info["scaling"]["min"][3] == 40 and data.info["scaling"]["max"][3] == 108
    notes = decode_notes(data.x.double().numpy(), data.info)
    onehot = load_dataset(f"music:{folder}", split="all", seq_len=4, velocity=True,
                          encoding="onehot")
    assert onehot.info["music"]["vocab"]["velocity"] == [40, 44, 100, 104, 108]
    assert onehot.shape[1] == sum(onehot.info["spans"]) and len(onehot.info["spans"]) == 4
    np.testing.assert_array_equal(decode_notes(onehot.x.numpy(), onehot.info), notes)
    # MIDI and MusicXML written from 4-column notes give each note its velocity back
    rows = timeline(notes[:2])
    assert rows.shape[1] == 4
    write_melodies(onehot.x[:2].numpy(), tmp_path / "m.mid", onehot.info)
    np.testing.assert_array_equal(read_midi(tmp_path / "m.mid", velocity=True), rows)
    write_musicxml(rows, tmp_path / "m.musicxml")
    np.testing.assert_array_equal(read_musicxml(tmp_path / "m.musicxml", velocity=True), rows)
    np.save(tmp_path / "step_1.npy", notes[:2])  # a run's saved samples: the report plays them
    np.testing.assert_array_equal(music_audio._load_notes(tmp_path / "step_1.npy"), notes[:2])
    # the bundled scores state no velocity: a clear error, not NaN features
    with pytest.raises(DataError, match="state no note velocity.*MIDI files do"):
        load_dataset("music:bach", limit=2, velocity=True)
    with pytest.raises(DataError, match="velocity must be true or false"):
        load_dataset(f"music:{folder}", velocity="yes")


def test_likelihood_learns_the_velocity_pattern_of_midi_files(tmp_path: Path) -> None:
    # Measured (8 pieces, 32 units, 1 thread, 150 likelihood steps at G's lr 0.003; seeds
    # 0 / 1 / 2): untrained G alternates loud and soft on 0.47 / 0.47 / 0.48 of note pairs,
    # velocity distance 0.097 / 0.093 / 0.074; trained 0.95 / 0.90 / 0.94 and 0.001-0.002
    # (the real melodies: 1.0 and 0). At crnngan's lr 0.001 the histogram is learned (0.002)
    # but not the alternation (0.49)
    folder = _velocity_folder(tmp_path)
    cfg = _feedback_onehot(150, likelihood=1.0, likelihood_warmup=150)
    cfg["data"].update(source=f"music:{folder}",
                       options={"seq_len": 32, "encoding": "onehot", "velocity": True})
    cfg["optim"]["g"]["lr"] = 0.003
    tr = Trainer(load_config(cfg), tmp_path / "run")
    untrained = copy.deepcopy(tr.G.state_dict())
    tr.fit()
    run = ganforge.load(tmp_path / "run")
    info = json.loads((tmp_path / "run" / "data.json").read_text())
    real = decode_notes(load_dataset(f"music:{folder}", split="train", seq_len=32,
                                     velocity=True, encoding="onehot").x.numpy(), info)

    def scores() -> tuple[float, float]:
        notes = decode_notes(run.sample(256, seed=1).numpy(), info)
        loud = notes[..., 3] > 70
        return (float((loud[:, 1:] != loud[:, :-1]).mean()),
                music_scores(notes, real)["velocity_distance"])

    after = scores()
    run.generator.load_state_dict(untrained)
    before = scores()
    print(f"alternation, velocity distance: untrained {before}, 150 steps {after}")
    assert before[0] < 0.6 and after[0] > 0.8
    assert before[1] > 0.05 and after[1] < 0.01


# ------------------------------------------------------------------------------ scores
def test_scores_match_hand_computed_values() -> None:
    scale = np.array([[p, 1, 1] for p in (60, 62, 64, 65, 67, 69, 71, 72)], dtype=float)
    chromatic = np.array([[p, 1, 1] for p in (60, 61, 62, 63)], dtype=float)
    # C major: every note in C major; 0,1,2,3: a major scale holds at most 3 of them (C# or Eb)
    assert scale_consistency([scale]) == 1.0
    assert scale_consistency([chromatic]) == 0.75
    assert scale_consistency([scale, chromatic]) == 0.875
    assert tone_span([scale, chromatic]) == 7.5  # (12 + 3) / 2
    hist = pitch_class_histogram([scale])
    np.testing.assert_allclose(hist, np.array([2, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1]) / 8)
    # |p - q| per class: 1/4 (C#), 1/8 (D), 1/4 (D#), 1/8 x 5 (E F G A B) -> 1.25 / 2
    assert total_variation(hist, pitch_class_histogram([chromatic])) == pytest.approx(0.625)
    motif = np.array([[p, 1, 1] for p in (60, 62, 60, 62, 60, 62, 60)], dtype=float)
    rising = np.array([[p, 1, 1] for p in (1, 2, 3, 4, 5)], dtype=float)
    assert repetitions([motif], n=4) == 2  # (60 62 60 62) and (62 60 62 60) come back once
    assert repetitions([motif], n=2) == 4
    assert repetitions([motif, rising]) == 1.0  # n = 4: (2 + 0) / 2
    # KL(real || generated): real C, D half each; generated C 1/4, D 3/4
    real = np.array([[[60, 1, 1], [62, 1, 1]]], dtype=float)
    gen = np.array([[[60, 1, 1], [62, 1, 1], [62, 1, 1], [74, 1, 1]]], dtype=float)
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)  # 0.14384
    assert kl_divergence([0.5, 0.5], [0.25, 0.75]) == pytest.approx(kl, rel=1e-4)
    lengths = np.array([[[60, d, 1] for d in (0.25, 0.5, 0.5, 1.0, 1.5, 4, 6, 0.7)]])
    np.testing.assert_allclose(note_length_histogram(lengths),
                               np.array([1, 2, 1, 1, 1, 0, 0, 2]) / 8)
    scores = music_scores(gen, real)
    assert scores["pitch_class_kl"] == pytest.approx(kl, rel=1e-4)
    assert scores["pitch_class_distance"] == pytest.approx(0.25)
    assert scores["note_length_distance"] == 0.0
    # every note a quarter vs the mixed lengths: 0.5 (1 + 2 + 1 + 7 + 1 + 2) / 8
    assert music_scores(lengths, real)["note_length_distance"] == pytest.approx(0.875)
    with pytest.raises(GanforgeError, match="no notes"):
        pitch_class_histogram([])
    # phrases of 3 notes (pitch, duration): the real melody holds (60 62 64) and (62 64 65)
    # as quarters; the generated one's 4 phrases: (60 62 64) found, (62 64 67) not, then
    # (64 67 60) and (67 60 62) not; a half note instead of a quarter is another phrase
    tune = np.array([[[p, 1, 1] for p in (60, 62, 64, 65)]], dtype=float)
    made = np.array([[[p, 1, 1] for p in (60, 62, 64, 67, 60, 62)]], dtype=float)
    assert copied_phrases(made, tune, n=3) == 0.25
    assert copied_phrases(tune, tune, n=3) == 1.0
    longer = tune.copy()
    longer[0, 0, 1] = 2.0
    assert copied_phrases(longer, tune, n=3) == 0.5  # only (62 64 65) after the half note
    assert math.isnan(copied_phrases(tune, tune, n=5))  # no melody has 5 notes
    assert math.isnan(music_scores(tune, tune)["copied_phrases"])  # phrases of 8 by default
    # polyphony: pairs where the next onset comes before the note ends. Quarter notes a
    # quarter apart never overlap; a half note followed one quarter later overlaps, a chord
    # (delta 0) overlaps, a note ending exactly at the next onset does not
    assert polyphony(tune) == 0.0
    held = np.array([[60, 2, 0], [62, 1, 1], [64, 1, 1], [67, 0.5, 0], [69, 0.5, 0.5]])
    assert polyphony([held]) == pytest.approx(2 / 4)  # (60 -> 62), (64 -> 67); 67 ends at 69
    assert polyphony([held, tune[0]]) == pytest.approx((2 / 4 + 0) / 2)  # a mean of melodies
    assert math.isnan(polyphony([held[:1]]))  # no pair of notes
    assert music_scores([held], tune)["polyphony"] == pytest.approx(0.5)
    # velocities (a 4th column): real all at 100 (bin 97-112), generated half at 100, half at
    # 40 (bin 33-48) -> distance 0.5; no score when either set lacks velocities
    forte = np.array([[[60, 1, 1, 100]] * 4], dtype=float)
    mixed = np.array([[[60, 1, 1, 100], [62, 1, 1, 40], [64, 1, 1, 100], [65, 1, 1, 40]]])
    np.testing.assert_allclose(velocity_histogram(mixed), [0, 0, 0.5, 0, 0, 0, 0.5, 0])
    assert music_scores(mixed, forte)["velocity_distance"] == pytest.approx(0.5)
    assert music_scores(mixed, forte)["pitch_class_kl"] == music_scores(mixed[..., :3],
                                                                        forte)["pitch_class_kl"]
    assert "velocity_distance" not in music_scores(mixed[..., :3], forte)


# ----------------------------------------------------------------------- crnngan preset
def _small_crnngan(steps: int, limit: int, **over) -> dict:
    cfg = load_config("crnngan").model_dump()
    cfg["data"]["options"] = {"seq_len": 32, "limit": limit}
    cfg["generator"]["layers"][0]["lstm"]["units"] = 32
    cfg["discriminator"]["layers"][0]["lstm"]["units"] = 32
    cfg["train"].update(steps=steps, batch_size=32, checkpoint_every=1000)
    cfg["monitor"].update(progress=False, log_every=10, sample_every=100_000, report=False,
                          tensorboard=False)
    cfg["device"] = "cpu"
    for key, value in over.items():
        section, name = key.split(".")
        cfg[section][name] = value
    return cfg


def _pitch_distance(run: Any, real: np.ndarray, n: int = 256) -> float:
    info = run.run_dir / "data.json"
    scaling = json.loads(info.read_text())["scaling"]
    notes = samples_to_notes(run.sample(n, seed=1).numpy(), scaling)
    return music_scores(notes, real)["pitch_class_distance"]


@pytest.mark.slow
def test_crnngan_learns_the_pitch_classes_and_writes_midi(tmp_path: Path, capsys) -> None:
    # Measured (seed 0, 12 chorales, 32 units, 1 thread): 0.804 untrained (every note near one
    # pitch) -> 0.258 after 250 steps (real pitch spread 0.17 scaled, generated 0.165); without
    # minibatch discrimination in D it stayed at 0.69-0.99 for 600 steps (collapse to 1-3
    # pitches) with feature matching, packing, instance noise or other learning rates.
    cfg = _small_crnngan(250, 12)
    tr = Trainer(load_config(cfg), tmp_path / "run")
    untrained = copy.deepcopy(tr.G.state_dict())
    tr.fit()
    run = ganforge.load(tmp_path / "run")
    real = load_dataset("music:bach", split="train", limit=12)
    real_notes = minmax_invert(real.x.double().numpy(), real.info["scaling"])
    after = _pitch_distance(run, real_notes)
    run.generator.load_state_dict(untrained)
    before = _pitch_distance(run, real_notes)
    print(f"pitch-class distance to real: untrained {before:.4f}, 250 steps {after:.4f}")
    assert before > 0.7 and after < 0.4, (before, after)
    # ganforge sample RUN --out melody.mid: the generated notes, read back from the file
    out = tmp_path / "melody.mid"
    assert cli_main(["sample", str(tmp_path / "run"), "-n", "3", "--seed", "2", "--out",
                     str(out)]) == 0
    trained = ganforge.load(tmp_path / "run")
    notes = samples_to_notes(trained.sample(3, seed=2).numpy(), real.info["scaling"])
    back = read_midi(out)
    np.testing.assert_array_equal(back, timeline(notes))
    assert len(back) <= 3 * 32 and set(back[:, 1]) <= set(notes[..., 0].ravel())
    assert cli_main(["sample", str(tmp_path / "run"), "-n", "2", "--out",
                     str(tmp_path / "melody.musicxml")]) == 0
    assert len(read_musicxml(tmp_path / "melody.musicxml")) > 0
    # a scaled G (no span_softmax) has no categories to draw at a temperature
    with pytest.raises(GanforgeError, match="span_softmax layer .* this run's generator has none"):
        trained.set_sample_temperature(0.8)
    # ganforge musicscore: the generated row is music_scores of the quantized samples; the
    # real-vs-real row compares the held-out chorale's windows with the training windows
    capsys.readouterr()
    assert cli_main(["musicscore", str(tmp_path / "run"), "-n", "256", "--seed", "1",
                     "--disc-iterations", "40"]) == 0
    table = capsys.readouterr().out.splitlines()
    rows = {" ".join(line.split()[:3]): [float(v) for v in line.split()[3:]] for line in table
            if line.startswith(("generated vs train", "test vs train"))}
    gen_row, test_row = rows["generated vs train"], rows["test vs train"]
    assert gen_row[1] == pytest.approx(after, abs=1e-4)
    print("\n".join(table))
    held = load_dataset("music:bach", split="test", limit=12)
    expected = music_scores(quantize_notes(minmax_invert(held.x.double().numpy(),
                                                         held.info["scaling"])),
                            quantize_notes(real_notes))
    assert test_row[:-1] == pytest.approx([expected[c] for c in SCORE_COLUMNS], abs=1e-4)
    # the discriminative column: TimeGAN's classifier on the quantized notes, min-max scaled
    def features(x: np.ndarray) -> np.ndarray:
        return note_features(decode_notes(x, real.info), real.info)

    assert test_row[-1] == pytest.approx(
        discriminative_score(features(real.x.double().numpy()), features(
            held.x.double().numpy()), iterations=40, seed=1), abs=1e-4)
    assert gen_row[-1] == pytest.approx(
        discriminative_score(features(real.x.double().numpy()), features(
            trained.sample(256, seed=1, scaled=True).double().numpy()), iterations=40,
            seed=1), abs=1e-4)
    assert expected["scale_consistency"] > 0.9  # a real chorale's windows: in one key


def test_crnngan_resume_equals_uninterrupted(tmp_path: Path) -> None:
    cfg = _small_crnngan(6, 3)
    cfg["train"]["checkpoint_every"] = 3
    full = ganforge.train(cfg, run_dir=tmp_path / "full")
    half = _small_crnngan(3, 3)
    half["train"]["checkpoint_every"] = 3
    ganforge.train(half, run_dir=tmp_path / "half")
    resumed = ganforge.train(cfg, resume=tmp_path / "half")
    assert resumed.step == full.step == 6
    for a, b in zip(full.generator.state_dict().values(),
                    resumed.generator.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------- one-hot notes
def test_onehot_windows_hold_the_scaled_windows_notes() -> None:
    oh = load_dataset("music:bach", split="train", limit=3, encoding="onehot")
    sc = load_dataset("music:bach", split="train", limit=3)
    vocab, spans = oh.info["music"]["vocab"], oh.info["spans"]
    assert spans == [len(vocab["pitch"]), len(vocab["duration"]), len(vocab["delta"])]
    assert oh.x.shape == (*sc.x.shape[:2], sum(spans)) and len(oh.info["columns"]) == sum(spans)
    for part in torch.split(oh.x, spans, dim=-1):  # exactly one 1 per variable and note
        assert torch.equal(part.sum(-1), torch.ones(part.shape[:2]))
        assert set(part.unique().tolist()) == {0.0, 1.0}
    notes = decode_notes(sc.x.double().numpy(), sc.info)
    np.testing.assert_array_equal(decode_notes(oh.x.numpy(), oh.info), notes)
    # pitches: every semitone from the source's lowest to its highest note (both splits)
    every = load_dataset("music:bach", split="all", limit=3)
    lo, hi = every.info["scaling"]["min"][0], every.info["scaling"]["max"][0]
    assert vocab["pitch"] == [float(p) for p in range(int(lo), int(hi) + 1)]
    assert set(notes[..., 1].ravel()) <= set(vocab["duration"])
    with pytest.raises(DataError, match="encoding .* must be one of scaled, onehot"):
        load_dataset("music:bach", split="train", limit=3, encoding="tokens")


def test_transpose_adds_the_training_melodies_in_other_keys() -> None:
    opts = {"limit": 3, "seq_len": 8, "test_fraction": 0.34, "encoding": "onehot"}
    base = load_dataset("music:bach", split="train", **opts)
    aug = load_dataset("music:bach", split="train", transpose=2, **opts)
    assert aug.info["music"]["transpose"] == 2 and len(aug) == 5 * len(base)
    notes, shifted = decode_notes(base.x.numpy(), base.info), decode_notes(aug.x.numpy(), aug.info)
    # the pitches are the original ones moved by -2..2 semitones, every shift once; rhythm kept
    want = Counter()
    for k in range(-2, 3):
        want.update((notes[..., 0] + k).ravel().tolist())
    assert Counter(shifted[..., 0].ravel().tolist()) == want
    assert Counter(shifted[..., 1].ravel().tolist()) == Counter(
        {d: 5 * c for d, c in Counter(notes[..., 1].ravel().tolist()).items()})
    lo, hi = base.info["music"]["vocab"]["pitch"][0], base.info["music"]["vocab"]["pitch"][-1]
    assert aug.info["music"]["vocab"]["pitch"] == [float(p) for p in range(int(lo) - 2, int(hi) + 3)]
    # the test split is not augmented: the same notes, in the encoding the training split uses
    test, test_aug = (load_dataset("music:bach", split="test", transpose=t, **opts) for t in (0, 2))
    assert test_aug.info["music"]["vocab"] == aug.info["music"]["vocab"]
    np.testing.assert_array_equal(decode_notes(test_aug.x.numpy(), test_aug.info),
                                  decode_notes(test.x.numpy(), test.info))
    for bad, msg in ((7, "use 0-6"), (-1, "integer >= 0")):
        with pytest.raises(DataError, match=msg):
            load_dataset("music:bach", split="train", transpose=bad, **opts)


def test_span_softmax_draws_each_span_from_its_softmax() -> None:
    from ganforge.architecture.layers import SpanSoftmax

    probs = [torch.tensor([0.6, 0.3, 0.1]), torch.tensor([0.8, 0.2])]
    logits = torch.cat([p.log() for p in probs]).repeat(40_000, 1)
    plain = SpanSoftmax([3, 2], None)(logits)
    torch.testing.assert_close(plain, torch.cat(probs).expand_as(plain))
    torch.manual_seed(0)
    soft = SpanSoftmax([3, 2], 0.2)(logits)
    torch.testing.assert_close(soft[:, :3].sum(1), torch.ones(len(soft)))
    torch.testing.assert_close(soft[:, 3:].sum(1), torch.ones(len(soft)))
    # Gumbel-max: each span's argmax is a draw with the softmax's probabilities
    for part, p in zip(torch.split(soft, [3, 2], dim=1), probs, strict=True):
        freq = torch.bincount(part.argmax(1), minlength=len(p)) / len(part)
        torch.testing.assert_close(freq, p, atol=0.01, rtol=0)
    # hard: the exact one-hot of the same draw forward, the soft values' gradient backward
    w = torch.randn(5)
    x1, x2 = logits[:64].clone().requires_grad_(), logits[:64].clone().requires_grad_()
    torch.manual_seed(1)
    s = SpanSoftmax([3, 2], 0.5)(x1)
    (s * w).sum().backward()
    torch.manual_seed(1)
    h = SpanSoftmax([3, 2], 0.5, hard=True)(x2)
    (h * w).sum().backward()
    assert set(h.detach().unique().tolist()) == {0.0, 1.0}
    assert torch.equal(h[:, :3].argmax(1), s[:, :3].argmax(1))
    torch.testing.assert_close(x1.grad, x2.grad)
    # hard per span: the first span one-hot, the second the same soft draw as without hard
    torch.manual_seed(1)
    m = SpanSoftmax([3, 2], 0.5, hard=[True, False])(logits[:64])
    torch.testing.assert_close(m[:, :3], h[:, :3].detach())
    torch.testing.assert_close(m[:, 3:], s[:, 3:].detach())
    assert not set(m[:, 3:].unique().tolist()) <= {0.0, 1.0}
    # sample_temperature: sampling (eval mode) draws from softmax(logits / T); training ignores it
    cold = SpanSoftmax([3, 2], 0.2, sample_temperature=0.5)
    torch.manual_seed(2)
    train_draw = cold(logits)
    torch.manual_seed(2)
    torch.testing.assert_close(train_draw, SpanSoftmax([3, 2], 0.2)(logits))
    cold.eval()
    for part, p in zip(torch.split(cold(logits), [3, 2], dim=1), probs, strict=True):
        freq = torch.bincount(part.argmax(1), minlength=len(p)) / len(part)
        torch.testing.assert_close(freq, torch.softmax(p.log() / 0.5, 0), atol=0.01, rtol=0)
    # one temperature per span: the first span sharpened (0.5), the second as learned (1)
    per_span = SpanSoftmax([3, 2], 0.2, sample_temperature=[0.5, 1]).eval()
    torch.manual_seed(3)
    for part, p, t in zip(torch.split(per_span(logits), [3, 2], dim=1), probs, (0.5, 1.0),
                          strict=True):
        freq = torch.bincount(part.argmax(1), minlength=len(p)) / len(part)
        torch.testing.assert_close(freq, torch.softmax(p.log() / t, 0), atol=0.01, rtol=0)


def test_span_softmax_spans_follow_the_data_or_say_what_is_wrong() -> None:
    from ganforge.architecture import build_network
    from ganforge.config import resolve_data_widths
    from ganforge.errors import ConfigError, SpecError

    with pytest.raises(SpecError, match=r"spans \[3, 3\] add up to 6, but the input has 5"):
        build_network({"layers": [{"span_softmax": {"spans": [3, 3]}}]}, (4, 5), "generator")
    with pytest.raises(SpecError, match=r"sample_temperature .* one per span \(2 spans\), got \[0.8\]"):
        build_network({"layers": [{"span_softmax": {"spans": [3, 2], "sample_temperature": [0.8]}}]},
                      (4, 5), "generator")
    cfg = load_config("crnngan-onehot")
    filled = resolve_data_widths(cfg, (32, 51), [25, 13, 13])
    assert filled.generator.layers[-2] == {"dense": {"units": 51}}
    assert filled.generator.layers[-1]["span_softmax"]["spans"] == [25, 13, 13]
    with pytest.raises(ConfigError, match="'spans'.*this data has none"):
        resolve_data_widths(cfg, (32, 51))


@pytest.mark.slow
def test_crnngan_onehot_learns_pitches_and_writes_its_notes(tmp_path: Path, capsys) -> None:
    # Measured (seed 1, 12 chorales, 32 units, 1 thread, 400 steps): untrained G draws every
    # category at random: note-length distance 0.65, scale consistency 0.71, tone span
    # 17.6; trained: 0.05, 0.92, 12.3 (real windows: span about 11). Seeds 0-3 at this small
    # budget (since the monitor's samples stopped moving training's RNG): seed 0 collapsed
    # onto one pitch (span 0.34), seed 2 0.25 / 0.96 / 9.5, seed 3 0.18 / 0.87 / 13.8.
    cfg = _small_crnngan(400, 12)
    cfg["seed"] = 1
    onehot = load_config("crnngan-onehot").model_dump()
    cfg["data"]["options"]["encoding"] = "onehot"
    cfg["generator"]["layers"][1:] = onehot["generator"]["layers"][-2:]  # dense, span_softmax
    tr = Trainer(load_config(cfg), tmp_path / "run")
    untrained = copy.deepcopy(tr.G.state_dict())
    tr.fit()
    run = ganforge.load(tmp_path / "run")
    info = json.loads((tmp_path / "run" / "data.json").read_text())
    assert info["music"]["encoding"] == "onehot" and info["shape"] == [32, sum(
        len(v) for v in info["music"]["vocab"].values())]
    real = load_dataset("music:bach", split="train", limit=12, encoding="onehot")
    real_notes = decode_notes(real.x.numpy(), real.info)

    def scores() -> dict[str, float]:
        return music_scores(decode_notes(run.sample(256, seed=1).numpy(), info), real_notes)

    after = scores()
    run.generator.load_state_dict(untrained)
    before = scores()
    print(f"untrained {before}\n400 steps {after}")
    assert before["note_length_distance"] > 0.6 and after["note_length_distance"] < 0.35
    assert before["scale_consistency"] < 0.75 and after["scale_consistency"] > 0.82
    assert before["tone_span"] > 15 and 8 < after["tone_span"] < 13
    out = tmp_path / "melody.mid"
    assert cli_main(["sample", str(tmp_path / "run"), "-n", "3", "--seed", "2", "--out",
                     str(out)]) == 0
    trained = ganforge.load(tmp_path / "run")
    notes = decode_notes(trained.sample(3, seed=2).numpy(), info)
    np.testing.assert_array_equal(read_midi(out), timeline(notes))
    assert set(notes[..., 1].ravel()) <= set(info["music"]["vocab"]["duration"])
    # sampling temperature per span: the pitch drawn at 0.5 keeps G's likelier notes (a
    # narrower span); durations and deltas, drawn at 1 with the same noise, are the same notes
    spans = trained.set_sample_temperature([0.5, 1, 1])
    assert spans == [len(v) for v in info["music"]["vocab"].values()]
    cold = decode_notes(trained.sample(256, seed=1).numpy(), info)
    run.generator.load_state_dict(trained.generator.state_dict())
    warm = decode_notes(run.sample(256, seed=1).numpy(), info)
    np.testing.assert_array_equal(cold[..., 1:], warm[..., 1:])
    print(f"tone span: temperature 1 {tone_span(warm):.2f}, pitch at 0.5 {tone_span(cold):.2f}")
    assert tone_span(cold) < tone_span(warm) - 1.0
    cold_out = tmp_path / "cold.mid"
    assert cli_main(["sample", str(tmp_path / "run"), "-n", "3", "--seed", "2", "--out",
                     str(cold_out), "--temperature", "0.5,1,1"]) == 0
    np.testing.assert_array_equal(read_midi(cold_out),
                                  timeline(decode_notes(trained.sample(3, seed=2).numpy(), info)))
    # musicscore --temperature scores those samples and records the temperatures it used
    assert cli_main(["musicscore", str(tmp_path / "run"), "-n", "256", "--seed", "1",
                     "--disc-iterations", "0", "--temperature", "0.5,1,1"]) == 0
    rec = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert rec["protocol"]["sample_temperature"] == [0.5, 1.0, 1.0]
    assert rec["tone_span"] == pytest.approx(tone_span(cold), abs=1e-6)
    with pytest.raises(GanforgeError, match=r"2 sampling temperatures for 3 spans"):
        trained.set_sample_temperature([0.5, 1])
    with pytest.raises(GanforgeError, match=r"numbers > 0"):
        trained.set_sample_temperature(0)
    assert cli_main(["sample", str(tmp_path / "run"), "-n", "3", "--out",
                     str(tmp_path / "x.mid"), "--temperature", "cold"]) == 2
    assert not (tmp_path / "x.mid").exists()


def _feedback_onehot(steps: int, **objective) -> dict:
    cfg = _small_crnngan(steps, 12)
    cfg["data"]["options"]["encoding"] = "onehot"
    cfg["generator"]["layers"] = [{"feedback": {"layers": [
        {"lstm": {"units": 32, "layers": 2}}, {"dense": {"units": "features"}},
        {"span_softmax": {"spans": "spans", "tau": 0.2}}]}}]
    cfg["objective"].update(objective)
    return cfg


def _mean_leap(notes: np.ndarray) -> float:
    """Mean |interval| in semitones between consecutive notes of each window."""
    return float(np.abs(np.diff(notes[..., 0], axis=1)).mean())


def test_likelihood_term_teaches_a_feedback_generator_bachs_steps(tmp_path: Path) -> None:
    # Measured (seed 0, 12 chorales, 32 units, 1 thread, 150 steps of the likelihood alone):
    # teacher-forced NLL of a real batch 7.47 -> 4.21 nats per note (three spans); free-running
    # samples' mean leap 6.4 semitones untrained -> 3.6 (real windows: 1.7), span 17.6 -> 13.6
    # (real ~11): more than halfway to the real melodies in both.
    from ganforge.architecture.layers_seq import teacher_forced_nll

    cfg = _feedback_onehot(150, likelihood=2.0, likelihood_warmup=150)
    tr = Trainer(load_config(cfg), tmp_path / "run")
    real = load_dataset("music:bach", split="train", limit=12, encoding="onehot")
    info = real.info
    batch = real.x[:64]
    z = tr.task.latent(64)

    def nll() -> float:
        with torch.no_grad():
            return teacher_forced_nll(tr.G, z, batch).item()

    def leaps() -> tuple[float, float]:
        tr.G.eval()
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            notes = decode_notes(tr.G(tr.task.latent(256)).numpy(), info)
        tr.G.train()
        return _mean_leap(notes), float(np.ptp(notes[..., 0], axis=1).mean())

    before, (leap0, span0) = nll(), leaps()
    stats = tr.task.train_step(tr.batcher.next)  # a warm-up step: G's loss is the term alone
    assert stats["g_loss"].item() == pytest.approx(2.0 * stats["likelihood_nll"].item(),
                                                   rel=1e-6)
    tr.fit()
    after, (leap1, span1) = nll(), leaps()
    real_notes = decode_notes(real.x.numpy(), info)
    real_leap, real_span = _mean_leap(real_notes), float(np.ptp(real_notes[..., 0], 1).mean())
    print(f"nll {before:.2f} -> {after:.2f}; leap {leap0:.2f} -> {leap1:.2f} (real "
          f"{real_leap:.2f}); span {span0:.1f} -> {span1:.1f} (real {real_span:.1f})")
    assert before - after > 2.5
    assert leap0 > 3 * real_leap and leap1 - real_leap < 0.5 * (leap0 - real_leap)
    assert span1 - real_span < 0.6 * (span0 - real_span)


def test_likelihood_warmup_without_d_is_the_same_g_update_and_leaves_d_alone(
        tmp_path: Path) -> None:
    """likelihood_warmup_d: false: a warm-up step updates G exactly as a warm-up step that
    also trains D (the same real batch and z, so the same likelihood gradient), leaves D's
    weights untouched, and the log's means count each key over the steps that reported it."""
    def trainer(name: str, warmup_d: bool) -> Trainer:
        cfg = _feedback_onehot(5, likelihood=2.0, likelihood_warmup=3,
                               likelihood_warmup_d=warmup_d)
        cfg["monitor"]["log_every"] = 5
        return Trainer(load_config(cfg), tmp_path / name)

    fast, slow = trainer("fast", False), trainer("slow", True)
    d0 = {k: v.clone() for k, v in fast.D.state_dict().items()}
    for tr in (fast, slow):
        tr.task.train_step(tr.batcher.next)
    for (name, a), b in zip(fast.G.state_dict().items(), slow.G.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(a, b) for a, b in zip(fast.G.state_dict().values(),
                                                     trainer("untrained", False).G
                                                     .state_dict().values(), strict=True))
    for k, v in fast.D.state_dict().items():
        assert torch.equal(v, d0[k]), k
    assert [p.requires_grad for p in fast.D.parameters()] == [True] * len(list(fast.D.parameters()))

    # the log (fit runs steps 0-4: 3 of warm-up, 2 adversarial): d_loss's mean is over 2
    seen: dict[str, list[float]] = {}

    class Keep:
        def on_step(self, trainer: Trainer, stats: dict) -> None:
            for k, v in stats.items():
                seen.setdefault(k, []).append(float(v))

        def on_log(self, trainer: Trainer, record: dict) -> None:
            pass

        def on_end(self, trainer: Trainer) -> None:
            pass

    fast.callbacks.append(Keep())
    fast.fit()
    rec = [json.loads(line) for line in (tmp_path / "fast" / "metrics.jsonl").read_text()
           .splitlines() if '"train"' in line][-1]
    assert len(seen["g_loss"]) == 5 and len(seen["d_loss"]) == 2
    assert rec["d_loss"] == pytest.approx(np.mean(seen["d_loss"]), rel=1e-5)
    assert rec["likelihood_nll"] == pytest.approx(np.mean(seen["likelihood_nll"]), rel=1e-5)
    assert any(not torch.equal(v, d0[k]) for k, v in fast.D.state_dict().items())


def test_likelihood_term_is_refused_where_it_cannot_work(tmp_path: Path) -> None:
    """No feedback G, a warm-up without the term, another task: config errors before any
    step, each naming the key to change."""
    plain = _small_crnngan(2, 12)
    plain["objective"]["likelihood"] = 1.0
    with pytest.raises(GanforgeError, match="G's last layer must be feedback"):
        Trainer(load_config(plain), tmp_path / "a")
    with pytest.raises(GanforgeError, match="likelihood_warmup is set but"):
        Trainer(load_config(_feedback_onehot(2, likelihood_warmup=10)), tmp_path / "b")
    with pytest.raises(GanforgeError, match="likelihood_warmup_d=false .* no warm-up"):
        Trainer(load_config(_feedback_onehot(2, likelihood=1.0, likelihood_warmup_d=False)),
                tmp_path / "b2")
    with pytest.raises(GanforgeError, match="implemented for task 'unconditional'"):
        Trainer(load_config("cgan-mnist", ["objective.likelihood=1", "train.steps=1"]),
                tmp_path / "c")


def test_midi_out_of_a_run_without_music_is_a_clear_error(tmp_path: Path, capsys) -> None:
    cfg = load_config("rgan-sines").model_dump()
    cfg["data"]["options"] = {"seq_len": 24, "dim": 5, "n": 64}
    cfg["train"].update(steps=1, batch_size=16, checkpoint_every=1000)
    cfg["monitor"].update(progress=False, sample_every=100_000, report=False, tensorboard=False)
    cfg["device"] = "cpu"
    ganforge.train(cfg, run_dir=tmp_path / "sines")
    assert cli_main(["sample", str(tmp_path / "sines"), "-n", "2", "--out",
                     str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err
    assert "written for music runs" in err and "data is 'sines' (sequence)" in err
    assert "Traceback" not in err and not (tmp_path / "x.mid").exists()
    assert cli_main(["sample", str(tmp_path / "sines"), "-n", "2", "--out",
                     str(tmp_path / "x.wav")]) == 2
    assert "MIDI, MusicXML and WAV are written for music runs" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


# ------------------------------------------------------------- audio and piano rolls
def _wav(data: bytes) -> tuple[np.ndarray, int]:
    """WAV bytes -> (frames, channels) float array and the sample rate."""
    with wave.open(io.BytesIO(data), "rb") as w:
        assert w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
        return x.reshape(-1, w.getnchannels()), w.getframerate()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _dominant_hz(x: np.ndarray, rate: int, lowest_strong: float = 1.0) -> float:
    """The frequency of the spectrum's peak; with ``lowest_strong`` < 1, of the lowest bin
    holding at least that fraction of the peak (a piano's E5 is loudest at its octave)."""
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    freqs = np.fft.rfftfreq(len(x), 1.0 / rate)
    spec[freqs < 50] = 0
    strong = np.flatnonzero(spec >= lowest_strong * spec.max())[0]
    top = strong + int(spec[strong:strong + 20].argmax())  # the top of that peak
    return float(freqs[top])


needs_fluidsynth = pytest.mark.skipif(
    music_audio.audio_problem() is not None,
    reason=f"fluidsynth or a GM soundfont is missing ({music_audio.INSTALL_AUDIO}; make "
           f"fluidsynth)")


@needs_fluidsynth
def test_wav_has_the_melodys_length_loudness_and_pitch(tmp_path: Path) -> None:
    # A4 for 4 beats, then C5 for 2 and E5 for 2: 8 beats at 100 bpm = 4.8 s, + 1 s tail
    mel = np.array([[69, 4, 0], [72, 2, 4], [76, 2, 2]], dtype=float)
    out = music_audio.write_wav(timeline([mel]), tmp_path / "m.wav")
    x, rate = _wav(out.read_bytes())
    assert rate == 44100 and x.shape[1] == 2
    assert len(x) / rate == pytest.approx(4.8 + music_audio.TAIL_S, abs=1e-3)
    mono = x.mean(axis=1)
    rms = np.sqrt(np.mean(mono[: int(4.8 * rate)] ** 2))
    assert rms > 300, rms  # not silent (16-bit full scale 32767)
    a4 = _dominant_hz(mono[int(0.3 * rate): int(2.3 * rate)], rate)
    assert a4 == pytest.approx(440.0, rel=0.02)  # the sustained A4: its fundamental dominates
    for start_s, end_s, midi in ((2.6, 3.5, 72), (3.8, 4.7, 76)):
        hz = 440.0 * 2 ** ((midi - 69) / 12)
        got = _dominant_hz(mono[int(start_s * rate): int(end_s * rate)], rate, 0.25)
        assert got == pytest.approx(hz, rel=0.02), (midi, got, hz)  # < a semitone (5.9 %)
    assert not list(tmp_path.glob(".*tmp*"))


def test_wav_without_fluidsynth_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    mel = timeline([np.array([[69, 1, 0]], dtype=float)])
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(GanforgeError) as err:
        music_audio.write_wav(mel, tmp_path / "out" / "m.wav")
    assert "apt-get install fluidsynth fluid-soundfont-gm" in str(err.value)
    assert err.value.exit_code == 2 and not (tmp_path / "out").exists()
    monkeypatch.undo()
    if shutil.which("fluidsynth") is None:
        return
    monkeypatch.setenv("GANFORGE_SOUNDFONT", str(tmp_path / "nowhere.sf2"))
    with pytest.raises(GanforgeError, match="GANFORGE_SOUNDFONT is .*nowhere.sf2"):
        music_audio.write_wav(mel, tmp_path / "m.wav")
    assert not (tmp_path / "m.wav").exists()


def test_piano_roll_draws_each_note_at_its_pitch_and_time() -> None:
    # four one-beat notes, rising by 4, 3 and 5 semitones; the bars' centre rows must fall in
    # the same proportions (the pitch axis is linear), one bar per beat from left to right
    pitches = [60, 64, 67, 72]
    mel = np.array([[p, 1, 1 if i else 0] for i, p in enumerate(pitches)], dtype=float)
    png = music_audio.piano_roll_png([mel])
    assert _png_size(png) == (640, 200)  # 8 x 2.5 inches at 80 dpi
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    note = np.abs(img - np.array([0x1F, 0x77, 0xB4])).sum(axis=2) < 30
    cols = np.flatnonzero(note.any(axis=0))
    x0, x1 = cols.min(), cols.max() + 1  # the bars cover beats 0..4
    rows = []
    for beat in range(4):
        a = x0 + (x1 - x0) * beat / 4
        band = note[:, int(a + (x1 - x0) / 16): int(a + 3 * (x1 - x0) / 16)]
        ys = np.flatnonzero(band.any(axis=1))
        assert len(ys) and np.ptp(ys) < 10, (beat, ys)  # one bar, a few pixels high
        rows.append(ys.mean())
    steps = -np.diff(rows)  # pixels per step up
    np.testing.assert_allclose(steps / steps.sum(), np.diff(pitches) / 12, atol=0.02)
    assert _png_size(music_audio.piano_roll_png([mel] * 3))[1] == 552  # 3 panels
    with pytest.raises(GanforgeError, match="at most 16 melodies"):
        music_audio.piano_roll_png([mel] * 17)


def _data_uris(text: str, kind: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(rf"data:{kind};base64,([A-Za-z0-9+/=]+)",
                                                    text)]


def test_music_run_report_sample_wav_and_piano_roll(tmp_path: Path, monkeypatch,
                                                    capsys) -> None:
    cfg = _small_crnngan(2, 3)
    cfg["monitor"]["report"] = True
    run_dir = tmp_path / "run"
    ganforge.train(cfg, run_dir=run_dir)
    info = json.loads((run_dir / "data.json").read_text())
    # the last sample step: a piano roll and its 4 melodies as notes; 4 real windows once
    fake = np.load(run_dir / "samples" / "step_00000002.npy", allow_pickle=False)
    real = np.load(run_dir / "samples" / music_audio.REAL_FILE, allow_pickle=False)
    assert fake.shape == real.shape == (4, 32, 3)
    train = load_dataset("music:bach", split="train", limit=3, seq_len=32)
    np.testing.assert_array_equal(real, samples_to_notes(train.x[:4].numpy(), info["scaling"]))
    assert _png_size((run_dir / "samples" / "step_00000002.png").read_bytes())[0] == 640
    # report.html: 3 generated and 3 real melodies, each a piano roll and a player
    text = (run_dir / "report.html").read_text()
    assert "<h2 id='melodies'>" in text and text.count("class='roll'") == 6
    pngs = [p for p in _data_uris(text, "image/png") if _png_size(p) == (480, 150)]
    assert len(pngs) == 6  # the rolls (8 x 2.5 in at 60 dpi); the other images are plots
    wavs = _data_uris(text, "audio/wav")
    if music_audio.audio_problem() is None:
        assert text.count("<audio controls") == 6 and len(wavs) == 6
        for wav_bytes, mel in zip(wavs, [*fake[:3], *real[:3]], strict=True):
            x, rate = _wav(wav_bytes)
            assert rate == music_audio.REPORT_RATE and x.shape[1] == 1
            end = music_audio.notes_end_seconds(timeline([mel]))
            assert len(x) / rate == pytest.approx(end + music_audio.TAIL_S, abs=1e-3)
            assert np.sqrt(np.mean(x ** 2)) > 100
    # without fluidsynth: the rolls stay, the players give way to a note on what to install
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    text = write_report(run_dir).read_text()
    assert text.count("class='roll'") == 6 and "<audio" not in text
    assert "No audio in this report" in text and "apt-get install fluidsynth" in text
    capsys.readouterr()
    wav = tmp_path / "m.wav"
    assert cli_main(["sample", str(run_dir), "-n", "2", "--out", str(wav)]) == 2
    err = capsys.readouterr().err
    assert "apt-get install fluidsynth fluid-soundfont-gm" in err and "Traceback" not in err
    assert not wav.exists() and not list(tmp_path.glob(".m.wav*"))
    monkeypatch.undo()
    # ganforge sample --out roll.png: one panel per melody; --out melody.wav: the timeline
    assert cli_main(["sample", str(run_dir), "-n", "3", "--out", str(tmp_path / "r.png")]) == 0
    assert _png_size((tmp_path / "r.png").read_bytes()) == (640, 552)
    assert cli_main(["sample", str(run_dir), "-n", "17", "--out", str(tmp_path / "x.png")]) == 2
    assert "at most 16 melodies" in capsys.readouterr().err
    if music_audio.audio_problem() is None:
        assert cli_main(["sample", str(run_dir), "-n", "2", "--seed", "3", "--out",
                         str(wav)]) == 0
        notes = samples_to_notes(ganforge.load(run_dir).sample(2, seed=3).numpy(),
                                 info["scaling"])
        x, rate = _wav(wav.read_bytes())
        assert rate == 44100
        assert len(x) / rate == pytest.approx(
            music_audio.notes_end_seconds(timeline(notes)) + music_audio.TAIL_S, abs=1e-3)


def test_musicscore_logs_its_rows_and_the_report_shows_them(tmp_path: Path, capsys) -> None:
    cfg = _small_crnngan(2, 12)
    cfg["monitor"]["report"] = True
    run_dir = tmp_path / "run"
    ganforge.train(cfg, run_dir=run_dir)
    assert "No music scores logged yet" in (run_dir / "report.html").read_text()
    log = run_dir / "metrics.jsonl"
    before = log.read_bytes()
    args = ["musicscore", str(run_dir), "-n", "64", "--seed", "1", "--disc-iterations", "5"]
    capsys.readouterr()
    assert cli_main([*args, "--no-log"]) == 0
    unlogged = capsys.readouterr().out
    assert log.read_bytes() == before
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "appended to" in out and out.splitlines()[:3] == unlogged.splitlines()[:3]
    head = out.splitlines()[0].split()
    assert head == [*SCORE_COLUMNS, "discriminative"]
    rows = {" ".join(line.split()[:3]): [float(v) for v in line.split()[3:]]
            for line in out.splitlines() if line.startswith(("generated vs", "test vs"))}
    rec = [json.loads(line) for line in log.read_text().splitlines()][-1]
    ref = rec["real_vs_real"]
    assert rec["kind"] == "eval" and rec["step"] == 2
    # the logged line holds the printed numbers: generated at the top level, test as real_vs_real
    assert [rec[c] for c in head] == pytest.approx(rows["generated vs train"], abs=5e-5)
    assert [ref[c] for c in head] == pytest.approx(rows["test vs train"], abs=5e-5)
    proto = rec["protocol"]
    train = load_dataset("music:bach", split="train", limit=12, seq_len=32)
    test = load_dataset("music:bach", split="test", limit=12, seq_len=32)
    assert proto["metrics"] == "music" and proto["n_generated"] == 64
    assert proto["real"] == {"dataset": "music:bach", "split": "train", "n": len(train.x)}
    assert proto["real_vs_real"]["n"] == len(test.x) > 0
    assert proto["discriminative"]["iterations"] == 5 and proto["checkpoint_step"] == 2
    # report.html: one table row per score, generated next to real vs real
    text = write_report(run_dir).read_text()
    assert "No music scores logged yet" not in text
    for col, label in music_audio.SCORE_NAMES.items():
        if col == "velocity_distance":  # the chorales have no velocities: no such row
            assert col not in rec and f"<td>{label}</td>" not in text
            continue
        assert f"<td>{label}</td><td>{rec[col]:.4f}</td><td>{ref[col]:.4f}</td>" in text, col
