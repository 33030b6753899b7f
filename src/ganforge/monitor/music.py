"""Melodies to look at and to listen to: piano rolls (matplotlib) and WAV audio (FluidSynth with
a General MIDI soundfont), for ``ganforge sample RUN --out roll.png / melody.wav``, the periodic
samples of a music run and the melodies section of its ``report.html`` (docs/music.md).

Melodies are quantized note events (T, 3) (pitch, duration, delta), as
``data.music.decode_notes`` gives them; they are laid out with ``data.music.timeline``, so
a piano roll and a WAV show and play exactly the notes the MIDI file of the same melodies holds.

Audio is rendered offline by the ``fluidsynth`` program (Debian: ``apt-get install fluidsynth
fluid-soundfont-gm``) from a temporary MIDI file; the soundfont is ``$GANFORGE_SOUNDFONT`` or
the first of :data:`SOUNDFONT_PATHS` that exists. The WAV is cut :data:`TAIL_S` after the last
note ends (FluidSynth renders the release and reverb for about 2.6 s more), with a 50 ms fade.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
import subprocess
import tempfile
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ganforge.data.music import decode_notes, timeline, write_midi
from ganforge.errors import GanforgeError, RunFailed
from ganforge.fileio import atomic_write_bytes

SOUNDFONT_ENV = "GANFORGE_SOUNDFONT"
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian / Ubuntu: fluid-soundfont-gm
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",  # Arch, Fedora
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/local/share/soundfonts/default.sf2",  # Homebrew / BSD
    "/opt/homebrew/share/soundfonts/default.sf2",
)
INSTALL_AUDIO = "apt-get install fluidsynth fluid-soundfont-gm"
TEMPO_BPM = 100.0  # as the MIDI files written (data.music.write_midi)
TAIL_S = 1.0  # seconds kept after the last note ends
FADE_S = 0.05
GAIN = 0.8  # FluidSynth's default 0.2 leaves a melody at about -40 dBFS RMS
RENDER_TIMEOUT_S = 300
MAX_ROLLS = 16  # panels in one piano-roll picture
NOTE_COLOR = "#1f77b4"
REPORT_MELODIES = 3  # generated and real melodies shown in report.html
REPORT_RATE = 16000  # Hz, mono: about 32 kB per second of audio in the report


# ------------------------------------------------------------------------ FluidSynth
def find_soundfont() -> Path | None:
    """``$GANFORGE_SOUNDFONT`` when set (even when it is missing: the caller says so), else
    the first standard soundfont that exists."""
    env = os.environ.get(SOUNDFONT_ENV)
    if env:
        return Path(env).expanduser()
    return next((Path(p) for p in SOUNDFONT_PATHS if Path(p).is_file()), None)


def audio_problem() -> str | None:
    """Why WAV audio cannot be rendered here (what to install or set), or None when it can."""
    if shutil.which("fluidsynth") is None:
        return (f"rendering audio needs the fluidsynth program and a General MIDI soundfont, "
                f"and fluidsynth is not on PATH: {INSTALL_AUDIO} (Debian/Ubuntu; other systems: "
                f"the fluidsynth package and a .sf2 soundfont). Or write .mid and play it "
                f"with any MIDI player.")
    sf = find_soundfont()
    if sf is None:
        return (f"rendering audio needs a General MIDI soundfont (.sf2) and none was found in "
                f"{', '.join(SOUNDFONT_PATHS)}: {INSTALL_AUDIO}, or set {SOUNDFONT_ENV} to "
                f"the path of a .sf2 file.")
    if not sf.is_file():
        return (f"{SOUNDFONT_ENV} is '{sf}', which is not a file; set it to a .sf2 soundfont "
                f"or unset it to use {SOUNDFONT_PATHS[0]} ({INSTALL_AUDIO}).")
    return None


def timeline_rows(notes: np.ndarray) -> np.ndarray:
    """Timeline rows (onset, pitch, duration[, velocity]) as a 2-D float array (0 rows: (0, 3))."""
    notes = np.asarray(notes, dtype=np.float64)
    return notes.reshape(-1, notes.shape[-1] if notes.ndim > 1 else 3)


def notes_end_seconds(notes: np.ndarray, tempo_bpm: float = TEMPO_BPM) -> float:
    """When the last of the timeline rows (onset, pitch, duration) ends, in seconds."""
    notes = timeline_rows(notes)
    end_q = float((notes[:, 0] + notes[:, 2]).max()) if len(notes) else 0.0
    return end_q * 60.0 / tempo_bpm


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise RunFailed(f"fluidsynth wrote {8 * w.getsampwidth()}-bit audio; expected "
                            f"16-bit PCM.")
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return frames.reshape(-1, w.getnchannels()), w.getframerate()


def _wav_bytes(frames: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(frames.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.ascontiguousarray(frames.astype("<i2")).tobytes())
    return buf.getvalue()


def render_wav_bytes(notes: np.ndarray, rate: int = 44100, mono: bool = False) -> bytes:
    """Timeline rows (onset, pitch, duration[, velocity]) -> the bytes of a 16-bit PCM WAV
    (stereo, or mono), a piano (GM program 0) at :data:`TEMPO_BPM` (each note at its velocity
    where the rows have one, else at ``write_midi``'s), lasting until :data:`TAIL_S` after
    the last note ends. Raises ``GanforgeError`` (what to install) when FluidSynth or the
    soundfont is missing, ``RunFailed`` when fluidsynth fails."""
    problem = audio_problem()
    if problem is not None:
        raise GanforgeError(problem)
    notes = timeline_rows(notes)
    if not len(notes):
        raise GanforgeError("no notes to render.")
    with tempfile.TemporaryDirectory(prefix="ganforge-audio-") as tmp:
        mid, raw = Path(tmp) / "melody.mid", Path(tmp) / "melody.wav"
        write_midi(notes, mid, tempo_bpm=TEMPO_BPM)
        cmd = ["fluidsynth", "-ni", "-q", "-g", str(GAIN), "-r", str(int(rate)),
               "-F", str(raw), "-T", "wav", "-O", "s16", str(find_soundfont()), str(mid)]
        try:
            done = subprocess.run(cmd, check=False, capture_output=True, text=True,
                                  timeout=RENDER_TIMEOUT_S, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise RunFailed(f"fluidsynth did not finish rendering in {RENDER_TIMEOUT_S} s.") \
                from None
        except OSError as exc:
            raise RunFailed(f"fluidsynth could not be started: {exc}.") from None
        if done.returncode != 0 or not raw.is_file():
            said = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RunFailed(f"fluidsynth failed (exit status {done.returncode}): "
                            f"{' / '.join(said) or 'no message'}.")
        frames, got_rate = _read_wav(raw)
    keep = round((notes_end_seconds(notes) + TAIL_S) * got_rate)
    if len(frames) < keep:  # a shorter render than asked: pad with silence
        frames = np.concatenate([frames, np.zeros((keep - len(frames), frames.shape[1]),
                                                  dtype=frames.dtype)])
    out = frames[:keep].astype(np.float64)
    fade = min(len(out), int(FADE_S * got_rate))
    if fade:
        out[-fade:] *= np.linspace(1.0, 0.0, fade)[:, None]
    if mono:
        out = out.mean(axis=1, keepdims=True)
    return _wav_bytes(np.clip(np.round(out), -32768, 32767), got_rate)


def write_wav(notes: np.ndarray, out: str | Path, rate: int = 44100) -> Path:
    """Render timeline rows to a WAV file (written whole, then moved into place: nothing is
    left at ``out`` when rendering fails)."""
    data = render_wav_bytes(notes, rate=rate)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(out, data)


# ------------------------------------------------------------------------ piano roll
def piano_roll_png(melodies: Sequence[np.ndarray], titles: Sequence[str] | None = None,
                   dpi: int = 80) -> bytes:
    """The PNG of a piano roll: one panel per melody (quantized (T, 3) note events), time in
    beats (quarter notes) across, MIDI pitch up; each note a bar from its onset for its
    length (as ``timeline`` lays the melody out: what the MIDI file plays)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    melodies = list(melodies)
    if not melodies:
        raise GanforgeError("no melody to draw.")
    if len(melodies) > MAX_ROLLS:
        raise GanforgeError(f"a piano roll shows at most {MAX_ROLLS} melodies, got "
                            f"{len(melodies)}: draw fewer (-n {MAX_ROLLS}), or write them all "
                            f"as .mid, .musicxml or .wav.")
    rows = [timeline([m]) for m in melodies]
    span = max((float((r[:, 0] + r[:, 2]).max()) for r in rows if len(r)), default=4.0)
    fig = Figure(figsize=(8.0, 2.2 * len(rows) + 0.3), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for i, (ax, r) in enumerate(zip(axes, rows, strict=True)):
        if len(r):
            for onset, pitch, dur in r[:, :3]:
                ax.add_patch(_bar(onset, pitch, dur))
            lo, hi = float(r[:, 1].min()), float(r[:, 1].max())
            ax.set_ylim(lo - 2, hi + 2)
        ax.set_xlim(0, span)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("MIDI pitch")
        ax.grid(True, axis="both", color="#ddd", linewidth=0.6)
        ax.set_axisbelow(True)
        if titles is not None and i < len(titles):
            ax.set_title(titles[i], fontsize=10)
    axes[-1].set_xlabel("time (beats)")
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _bar(onset: float, pitch: float, dur: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((onset, pitch - 0.4), dur, 0.8, facecolor=NOTE_COLOR, edgecolor="none")


def write_piano_roll(melodies: Sequence[np.ndarray], out: str | Path,
                     titles: Sequence[str] | None = None) -> Path:
    png = piano_roll_png(melodies, titles)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(out, png)


# ------------------------------------------------------------- a music run's samples
SAMPLE_MELODIES = 4  # fixed-latent melodies drawn (and stored as notes) per sample step
REAL_FILE = "real_melodies.npy"


def save_music_samples(samples: np.ndarray, real: np.ndarray, path: str | Path,
                       info: dict[str, Any]) -> Path:
    """A music run's periodic samples: the first :data:`SAMPLE_MELODIES` generated melodies
    as a piano roll at ``path`` (``samples/step_N.png``) and as quantized notes beside it
    (``step_N.npy``: the report plays them); the same number of real training windows as
    ``samples/real_melodies.npy`` once. Plain arrays, read back with ``allow_pickle=False``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fake = decode_notes(np.asarray(samples)[:SAMPLE_MELODIES], info)
    np.save(path.with_suffix(".npy"), fake)
    real_path = path.parent / REAL_FILE
    if not real_path.is_file():
        np.save(real_path, decode_notes(np.asarray(real)[:SAMPLE_MELODIES], info))
    return write_piano_roll(list(fake), path)


def _latest_generated(samples_dir: Path) -> Path | None:
    steps = sorted(p for p in samples_dir.glob("step_*.npy") if p.stem[5:].isdigit())
    return steps[-1] if steps else None


def _load_notes(path: Path) -> np.ndarray | None:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return arr if arr.ndim == 3 and arr.shape[-1] in (3, 4) and len(arr) else None


def _data_uri(kind: str, data: bytes) -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def melodies_section(run_dir: str | Path, k: int = REPORT_MELODIES) -> str:
    """The report's HTML for a music run: ``k`` generated melodies (the last sample step) and
    ``k`` real training windows, each a piano roll and, when FluidSynth is here, a player."""
    samples_dir = Path(run_dir) / "samples"
    latest = _latest_generated(samples_dir) if samples_dir.is_dir() else None
    fake = _load_notes(latest) if latest is not None else None
    real = _load_notes(samples_dir / REAL_FILE)
    if fake is None and real is None:
        return "<p>No melody saved yet (samples/step_N.npy appear at each sample step).</p>"
    problem = audio_problem()
    parts = []
    if problem is not None:
        parts.append(f"<p class='note'>No audio in this report: {html.escape(problem)} "
                     f"Then run <code>ganforge report {html.escape(str(run_dir))}</code> "
                     f"again.</p>")
    step = (latest.stem[5:].lstrip("0") or "0") if latest is not None else "?"
    for label, mels in ((f"generated (step {step})", fake), ("real (training windows)", real)):
        if mels is None:
            continue
        figs = []
        for i, mel in enumerate(mels[:k]):
            caption = f"{label} #{i + 1}"
            roll = _data_uri("image/png", piano_roll_png([mel], dpi=60))
            fig = (f"<figure><img class='roll' alt='piano roll {html.escape(caption)}' "
                   f"src='{roll}'>")
            if problem is None:
                try:
                    wav = render_wav_bytes(timeline([mel]), rate=REPORT_RATE, mono=True)
                    fig += f"<audio controls src='{_data_uri('audio/wav', wav)}'></audio>"
                except GanforgeError as exc:
                    fig += f"<p class='alarm'>no audio: {html.escape(str(exc))}</p>"
            figs.append(f"{fig}<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append(f"<h3>{html.escape(label)}</h3><div class='melodies'>{''.join(figs)}</div>")
    return "\n".join(parts)


SCORE_NAMES = {"pitch_class_kl": "pitch-class KL", "pitch_class_distance": "pitch-class distance",
               "note_length_distance": "note-length distance",
               "scale_consistency": "scale consistency", "repetitions": "repetitions",
               "tone_span": "tone span (semitones)",
               "polyphony": "polyphony (notes overlapping the next)",
               "velocity_distance": "velocity distance",
               "copied_phrases": "phrases of 8 notes found in the training windows",
               "discriminative": "discriminative"}


def music_scores_section(evals: Sequence[dict[str, Any]]) -> str:
    """The report's table of the last ``ganforge musicscore`` line (an ``eval`` record whose
    protocol says ``metrics: music``): each score of the generated melodies next to the
    held-out real melodies' (real vs real); a note on how to get it when none is logged."""
    scored = [r for r in evals if isinstance(r.get("protocol"), dict)
              and r["protocol"].get("metrics") == "music"]
    if not scored:
        return ("<p class='note'>No music scores logged yet: <code>ganforge musicscore "
                "RUN</code> adds them here.</p>")
    rec = scored[-1]
    ref = rec.get("real_vs_real") if isinstance(rec.get("real_vs_real"), dict) else {}

    def cell(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""

    body = "".join(f"<tr><td>{html.escape(label)}</td><td>{cell(rec[key])}</td>"
                   f"<td>{cell(ref.get(key))}</td></tr>"
                   for key, label in SCORE_NAMES.items() if key in rec)
    proto = rec["protocol"]
    real = proto.get("real", {}) if isinstance(proto.get("real"), dict) else {}
    return (f"<h3>Scores (step {html.escape(str(rec.get('step')))}, "
            f"{html.escape(str(proto.get('n_generated')))} generated windows vs "
            f"{html.escape(str(real.get('n')))} training windows)</h3>"
            f"<table><tr><th>score</th><th>generated vs train</th>"
            f"<th>real vs real (held-out pieces vs train)</th></tr>{body}</table>")
