"""Export a run's generator for deployment: ONNX, TorchScript or safetensors, each with a JSON
file beside it (``PATH.json``) that says how to feed it and how to read its output.

The generator exported is the EMA generator when the checkpoint holds ``generator_ema.*``
weights (an exponential moving average of G usually gives better samples), else the trained
``generator.*``; ``weights="raw"`` forces the latter. Spectral-norm parametrizations are baked
into plain weights for ONNX and TorchScript. Every export is checked before it is moved into
place: the exported file is run on a few latents and compared with PyTorch, and the largest
difference is recorded in the JSON (``verification``).

Files are written to a temporary name and renamed, so a failed export leaves nothing behind and
never damages an existing file; an existing ``--out`` is only replaced with ``force=True``.
"""

from __future__ import annotations

import copy
import json
import math
import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge import api
from ganforge import checkpoint as ckpt
from ganforge.architecture import build_network
from ganforge.architecture.builder import SpecNet
from ganforge.errors import CheckpointError, GanforgeError
from ganforge.fileio import atomic_path
from ganforge.version import __version__

FORMATS = ("onnx", "torchscript", "safetensors")
SUFFIXES = {"onnx": (".onnx",), "torchscript": (".pt", ".ts", ".torchscript"),
            "safetensors": (".safetensors",)}
WEIGHT_CHOICES = ("auto", "ema", "raw")
SCHEMA = "ganforge.export/1"
EMA_MODULE = "generator_ema"
VERIFY_TOLERANCE = 1e-3  # an export that disagrees more than this with PyTorch is refused


@dataclass
class UsableRun:
    """A loaded run plus where its generator weights came from."""

    run: Any  # ganforge.api.Run
    checkpoint: Path
    weights: str  # "generator_ema" or "generator"


@dataclass
class ExportResult:
    path: Path
    meta_path: Path
    meta: dict[str, Any]


# ----------------------------------------------------------------------------------- loading
def checkpoint_keys(path: Path) -> list[str]:
    """Tensor names in a checkpoint's model.safetensors (read from the header only)."""
    from safetensors import SafetensorError, safe_open

    file = Path(path) / "model.safetensors"
    try:
        with safe_open(str(file), framework="pt") as f:
            return list(f.keys())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{path}' is incomplete: {file} is missing.") from None
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"checkpoint '{path}' is corrupt ({exc}).") from None


def has_ema(path: Path) -> bool:
    return any(k.startswith(EMA_MODULE + ".") for k in checkpoint_keys(path))


def load_for_use(run_dir: str | Path, checkpoint: str | Path | None = None,
                 weights: str = "auto", device: str = "cpu") -> UsableRun:
    """Load a run for sampling/export; its generator holds the EMA weights when the checkpoint
    has them (``weights="auto"``), or exactly the EMA (``"ema"``) or trained (``"raw"``) ones.

    EMA weights overlay the trained ones key by key, so an EMA store that keeps parameters
    only (BatchNorm running statistics taken from the trained generator) also loads.
    """
    from safetensors.torch import load_file

    if weights not in WEIGHT_CHOICES:
        raise GanforgeError(f"unknown weights choice '{weights}'; use one of "
                            f"{', '.join(WEIGHT_CHOICES)}.")
    run_dir = Path(run_dir)
    api.read_run_config(run_dir)  # clear errors for a missing or non-run directory
    path = Path(checkpoint) if checkpoint is not None else ckpt.latest_checkpoint(run_dir)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint '{path}' does not exist; list the run's "
                              f"checkpoints with: ls {run_dir / ckpt.CKPT_DIR}")
    ema = has_ema(path)
    if weights == "ema" and not ema:
        raise CheckpointError(f"checkpoint '{path}' holds no {EMA_MODULE} weights (the run was "
                              f"trained without EMA). Use --weights auto or raw.")
    run = api.load(run_dir, device=device, checkpoint=path)
    source = "generator"
    if ema and weights == "raw":  # api.load gave the EMA generator: the trained one instead
        tensors = load_file(str(path / "model.safetensors"))
        ckpt.load_module_weights(run.generator, {k: v for k, v in tensors.items()
                                                 if k.startswith("generator.")}, "generator",
                                 path)
        run.generator.eval()
    elif ema:
        tensors = load_file(str(path / "model.safetensors"))
        merged = {k[len("generator."):]: v for k, v in tensors.items()
                  if k.startswith("generator.")}
        merged.update({k[len(EMA_MODULE) + 1:]: v for k, v in tensors.items()
                       if k.startswith(EMA_MODULE + ".")})
        ckpt.load_module_weights(run.generator, {f"{EMA_MODULE}.{k}": v for k, v in
                                                 merged.items()}, EMA_MODULE, path)
        run.generator.eval()
        source = EMA_MODULE
    return UsableRun(run, path, source)


# ---------------------------------------------------------------------------- description
def output_range(generator: nn.Module) -> tuple[list[float] | None, str | None]:
    """The value range the generator's last layer guarantees, and that layer's name."""
    plans = getattr(generator, "plans", None)
    last = plans[-1].type if plans else None
    if last == "tanh":
        return [-1.0, 1.0], last
    if last == "sigmoid":
        return [0.0, 1.0], last
    return None, last


def conditioning_inputs(config: Any) -> list[dict[str, Any]]:
    """Inputs besides the latent. Unconditional generators have none.

    The schema leaves room for conditional generators: each entry is
    ``{"name", "role": "condition", "kind": "class" | "vector", "dtype", "shape",
    "num_classes" (class), "encoding": "index" | "one_hot"}`` and is also listed in
    ``inputs`` in the order the exported graph takes them.
    """
    if config.task == "unconditional":
        return []
    raise GanforgeError(f"exporting runs of task '{config.task}' is not supported yet: the "
                        f"exporter knows how to describe unconditional generators only "
                        f"(a latent in, a sample out).")


def latent_distribution(distribution: str) -> dict[str, Any]:
    if distribution == "uniform":
        return {"type": "uniform", "low": -1.0, "high": 1.0}
    return {"type": "normal", "mean": 0.0, "std": 1.0}


def describe(usable: UsableRun, fmt: str, file_name: str) -> dict[str, Any]:
    """The JSON written beside an export (see docs/using.md for every field)."""
    run, cfg, G = usable.run, usable.run.config, usable.run.generator
    latent_shape = list(cfg.latent.full_shape)
    data_shape = list(G.out_shape)
    rng, last = output_range(G)
    cond = conditioning_inputs(cfg)
    kind = {3: "image", 2: "sequence"}.get(len(data_shape), "vector")
    out: dict[str, Any] = {"name": "x", "role": "sample", "kind": kind, "dtype": "float32",
                           "shape": ["batch", *data_shape], "range": rng,
                           "last_layer": last}
    if kind == "image":
        out["layout"] = "NCHW"
        out["channels"] = data_shape[0]
        if rng == [-1.0, 1.0]:
            out["to_uint8"] = "clip(round((x + 1) * 127.5), 0, 255)"
        elif rng == [0.0, 1.0]:
            out["to_uint8"] = "clip(round(x * 255), 0, 255)"
    elif kind == "sequence":
        out["layout"] = "NTF (batch, time, features)"
    input_names = ["z"] + [c["name"] for c in cond]
    return {
        "schema": SCHEMA,
        "format": fmt,
        "file": file_name,
        "inputs": [{"name": "z", "role": "latent", "dtype": "float32",
                    "shape": ["batch", *latent_shape],
                    "distribution": latent_distribution(cfg.latent.distribution)}] + cond,
        "input_order": input_names,
        "conditioning": cond,
        "outputs": [out],
        "latent": {"shape": latent_shape, "size": math.prod(latent_shape),
                   "distribution": cfg.latent.distribution,
                   "mean": 0.0,
                   "truncation": {
                       "applied_in_file": False,
                       "scale": "z' = psi * z (psi in [0, 1]; 1 = none, 0 = the mean sample)",
                       "resample": "redraw components with |z| > psi from the latent "
                                   "distribution restricted to [-psi, psi]"}},
        "data": {"source": cfg.data.source, "split": cfg.data.split, "kind": run.data_kind,
                 "shape": list(run.data_shape)},
        "run": {"name": cfg.name, "task": cfg.task, "run_dir": str(run.run_dir),
                "checkpoint": str(usable.checkpoint), "step": run.step,
                "weights": usable.weights},
        "generator_spec": cfg.generator.model_dump(mode="json"),
        "versions": {"ganforge": __version__, "torch": torch.__version__.split("+")[0],
                     "python": platform.python_version()},
    }


# -------------------------------------------------------------------------------- writers
def _baked(G: nn.Module) -> nn.Module:
    """A CPU eval-mode copy with parametrizations (spectral norm) folded into plain weights.

    The copy is rebuilt from the layer plans without spectral norm and loaded with the
    effective (normalised) weights; ``remove_parametrizations`` on a deepcopy is not safe, as
    the copy shares the parametrized class with the original and would break it.
    """
    from dataclasses import replace

    from torch.nn.utils import parametrize

    G = G.eval()
    if not any(parametrize.is_parametrized(m) for m in G.modules()):
        m = copy.deepcopy(G).cpu().eval()
    elif isinstance(G, SpecNet):
        m = SpecNet([replace(p, spectral_norm=False) for p in G.plans], G.in_shape, G.name)
        state: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            for k, v in G.state_dict().items():
                if ".parametrizations." not in k and not k.startswith("parametrizations."):
                    state[k] = v.detach().cpu()
            for name, mod in G.named_modules():
                if parametrize.is_parametrized(mod):
                    for pname in mod.parametrizations:
                        key = f"{name}.{pname}" if name else pname
                        state[key] = getattr(mod, pname).detach().cpu().clone()
        m.load_state_dict(state, strict=True)
        m.eval()
    else:
        raise GanforgeError(f"cannot fold the parametrizations of a {type(G).__name__}; "
                            f"export networks built from ganforge specs.")
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def _need_onnx() -> None:
    missing = []
    for mod in ("onnx", "onnxscript"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise GanforgeError(f"ONNX export needs {' and '.join(missing)}: "
                            f"pip install 'ganforge[onnx]' (installs onnx, onnxscript and "
                            f"onnxruntime).")


def _write_onnx(G: nn.Module, z: torch.Tensor, path: Path, opset: int | None) -> dict[str, Any]:
    import logging

    _need_onnx()
    import onnx

    m = _baked(G)
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kwargs: dict[str, Any] = {}
            if opset is not None:
                kwargs["opset_version"] = opset
            torch.onnx.export(m, (z.cpu(),), str(path), dynamo=True, verbose=False,
                              input_names=["z"], output_names=["x"], external_data=False,
                              dynamic_shapes=({0: torch.export.Dim("batch")},), **kwargs)
    except GanforgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the exporter raises many unrelated types
        raise GanforgeError(f"ONNX export failed ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0] if str(exc) else ''}). Try "
                            f"--format torchscript or safetensors.") from None
    finally:
        logger.setLevel(level)
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    opsets = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    return {"opset": opsets.get("ai.onnx"), "exporter": "torch.onnx.export(dynamo=True)"}


def _write_torchscript(G: nn.Module, z: torch.Tensor, path: Path) -> dict[str, Any]:
    m = _baked(G)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated upstream but still supported
        traced = torch.jit.trace(m, (z.cpu(),), check_trace=False)
        traced.save(str(path))
    return {"exporter": "torch.jit.trace", "load_with": "torch.jit.load(PATH)"}


def _write_safetensors(G: nn.Module, path: Path, header: dict[str, Any]) -> dict[str, Any]:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt",
                                          "ganforge.export": json.dumps(header)})
    return {"load_with": "ganforge.apps.export.load_exported(PATH)",
            "tensors": len(state)}


# ------------------------------------------------------------------------------ verifying
def run_exported(path: Path, fmt: str, z: torch.Tensor,
                 meta: dict[str, Any] | None = None) -> torch.Tensor | None:
    """Run an exported file on latents ``z``; None when the runtime is not installed (ONNX
    without onnxruntime)."""
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            return None
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        (out,) = sess.run(None, {"z": z.cpu().float().numpy()})
        return torch.from_numpy(out)
    if fmt == "torchscript":
        m = torch.jit.load(str(path), map_location="cpu")
        with torch.no_grad():
            return m(z.cpu().float())
    if fmt == "safetensors":
        m = load_exported(path, meta)
        with torch.no_grad():
            return m(z.cpu().float())
    raise GanforgeError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}.")


def load_exported(path: str | Path, meta: dict[str, Any] | None = None) -> nn.Module:
    """Rebuild a generator exported as safetensors (spec from the JSON beside it)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if meta is None:
        meta = read_meta(path)
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"'{path}' is not a readable safetensors file ({exc}).") from None
    latent = tuple(meta["inputs"][0]["shape"][1:])
    G = build_network(meta["generator_spec"], latent, "generator")
    try:
        G.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"the weights in '{path}' do not match the spec in its JSON: "
                              f"{str(exc).splitlines()[0]}") from None
    return G.eval()


def meta_path_for(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_meta(path: str | Path) -> dict[str, Any]:
    mp = meta_path_for(path)
    try:
        meta = json.loads(mp.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"'{mp}' is missing: an exported generator needs the JSON that "
                              f"'ganforge export' writes beside it.") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"'{mp}' is not valid JSON ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise CheckpointError(f"'{mp}' is not a ganforge export description "
                              f"(expected schema {SCHEMA}).")
    return meta


# ---------------------------------------------------------------------------------- export
def check_out_path(fmt: str, out: Path, force: bool) -> None:
    if fmt not in FORMATS:
        raise GanforgeError(f"unknown export format '{fmt}'; use one of {', '.join(FORMATS)}.")
    if out.suffix.lower() not in SUFFIXES[fmt]:
        raise GanforgeError(f"--out '{out}' does not end in {' or '.join(SUFFIXES[fmt])}, the "
                            f"extension of a {fmt} file; name it e.g. "
                            f"'{out.with_suffix(SUFFIXES[fmt][0]).name}'.")
    if out.is_dir():
        raise GanforgeError(f"--out '{out}' is a directory; give a file name.")
    for p in (out, meta_path_for(out)):
        if p.exists() and not force:
            raise GanforgeError(f"'{p}' already exists; pass --force to replace it, or choose "
                                f"another --out.")


def export_generator(run_dir: str | Path, fmt: str, out: str | Path, *,
                     checkpoint: str | Path | None = None, weights: str = "auto",
                     force: bool = False, opset: int | None = None,
                     verify_n: int = 8) -> ExportResult:
    """Export the generator of ``run_dir`` to ``out`` in format ``fmt`` (onnx, torchscript,
    safetensors) and write ``out + '.json'``. Returns the paths and the description."""
    out = Path(out)
    check_out_path(fmt, out, force)
    usable = load_for_use(run_dir, checkpoint=checkpoint, weights=weights)
    run = usable.run
    meta = describe(usable, fmt, out.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    example = run.latent(max(2, verify_n), seed=20_240_601)
    G = run.generator.eval()
    # Nested: on leaving the block the inner one renames the model into place first, then the
    # outer one its .json; on an error both temporary files are removed.
    with atomic_path(meta_path_for(out)) as tmp_meta, atomic_path(out) as tmp:
        if fmt == "onnx":
            meta["export"] = _write_onnx(G, example, tmp, opset)
        elif fmt == "torchscript":
            meta["export"] = _write_torchscript(G, example, tmp)
        else:
            meta["export"] = _write_safetensors(G, tmp, {k: meta[k] for k in (
                "schema", "inputs", "outputs", "latent", "generator_spec")})
        meta["verification"] = _verify(G, tmp, fmt, example, meta)
        tmp_meta.write_text(json.dumps(meta, indent=2) + "\n")
        _user_mode(tmp)
    return ExportResult(out, meta_path_for(out), meta)


def _user_mode(path: Path) -> None:
    """Give a finished file the permissions of any new file (some writers create 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _verify(G: nn.Module, path: Path, fmt: str, z: torch.Tensor, meta: dict[str, Any]
            ) -> dict[str, Any]:
    with torch.no_grad():
        ref = G(z.to(next(G.parameters()).device)).float().cpu()
    got = run_exported(path, fmt, z, meta)
    if got is None:
        return {"checked": False, "reason": "onnxruntime is not installed "
                                            "(pip install 'ganforge[onnx]')"}
    if got.shape != ref.shape:
        raise GanforgeError(f"the exported {fmt} file returns shape {tuple(got.shape)}, PyTorch "
                            f"{tuple(ref.shape)}; the export is broken, nothing was written.")
    diff = float((got - ref).abs().max())
    if not diff <= VERIFY_TOLERANCE:
        raise GanforgeError(f"the exported {fmt} file disagrees with PyTorch by {diff:.3g} "
                            f"(limit {VERIFY_TOLERANCE}); nothing was written. Try another "
                            f"--format.")
    return {"checked": True, "latents": int(z.shape[0]), "max_abs_diff": diff,
            "runtime": {"onnx": "onnxruntime", "torchscript": "torch.jit.load",
                        "safetensors": "ganforge.apps.export.load_exported"}[fmt]}
