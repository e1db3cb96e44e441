"""A real, small, seeded fine-tune of the vanilla model: the ground truth predictions are judged by.

LoRA (peft) by default, full fine-tuning as an option. The loss falls on response
tokens only (and the end-of-turn token after them), exactly the positions
`chat.encode_conversation` marks. The vanilla model is never modified: training runs
on a deep copy, and a LoRA adapter is merged into that copy afterwards, so the tuned
model has the same layers and hooks as the vanilla one. Every setting is in the
`FinetuneSettings` returned with the result.
"""

from __future__ import annotations

import copy
import random
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from typing import Sequence

import torch

from .chat import encode_conversation
from .data import Conversation
from .errors import MdfGuardError
from .models import LoadedModel, decoder_layers, describe_model

IGNORE = -100
METHODS = ("lora", "full")


@dataclass(frozen=True)
class FinetuneSettings:
    method: str = "lora"
    epochs: int = 3
    learning_rate: float = 2e-4          # LoRA; 5e-5 is typical for full fine-tuning
    batch_size: int = 16
    max_steps: int | None = None         # stop early (tests, smoke runs)
    max_tokens: int = 256                # per example, cut from the left
    weight_decay: float = 0.0
    warmup_steps: int = 0
    grad_clip: float = 1.0
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    bf16_autocast: bool = False          # CPU/GPU autocast for the forward pass
    train_eos: bool = True               # also learn the end-of-turn token after the response
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}")


@dataclass
class FinetuneResult:
    model: LoadedModel
    settings: FinetuneSettings
    seconds: float
    steps: int
    examples: int
    response_tokens: int
    losses: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        return {"settings": asdict(self.settings), "seconds": round(self.seconds, 3), "steps": self.steps,
                "examples": self.examples, "response_tokens": self.response_tokens,
                "loss_first": self.losses[0] if self.losses else None,
                "loss_last": self.losses[-1] if self.losses else None,
                "device": str(self.model.device), "torch": torch.__version__}


def build_batch(tokenizer, conversations: Sequence[Conversation], max_tokens: int,
                train_eos: bool = True) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask, and labels that are IGNORE except on response tokens."""
    rows = []
    for conversation in conversations:
        enc = encode_conversation(tokenizer, conversation, max_tokens - (1 if train_eos else 0))
        ids = enc.ids + ([tokenizer.eos_token_id] if train_eos else [])
        labels = [IGNORE] * enc.response_start + ids[enc.response_start:]
        rows.append((ids, labels))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    return {
        "input_ids": torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows]),
        "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]),
        "labels": torch.tensor([labels + [IGNORE] * (width - len(labels)) for _, labels in rows]),
    }


def response_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled (response) positions."""
    shifted = logits[:, :-1].float().reshape(-1, logits.shape[-1])
    return torch.nn.functional.cross_entropy(shifted, labels[:, 1:].reshape(-1), ignore_index=IGNORE)


def finetune(lm: LoadedModel, conversations: Sequence[Conversation], settings: FinetuneSettings) -> FinetuneResult:
    """Train a copy of `lm.model` on the conversations; `lm` itself is left as it was."""
    started = time.perf_counter()
    settings = resolve_for_model(settings, lm)
    torch.manual_seed(settings.seed)
    model = copy.deepcopy(lm.model)
    model.train()
    if settings.method == "lora":
        model = _with_lora(model, settings)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    order = list(range(len(conversations)))
    rng = random.Random(settings.seed)
    device = lm.device
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if settings.bf16_autocast
                else nullcontext())
    losses: list[float] = []
    steps = tokens = 0
    done = False
    for _epoch in range(settings.epochs):
        rng.shuffle(order)
        for start in range(0, len(order), settings.batch_size):
            batch = build_batch(lm.tokenizer, [conversations[i] for i in order[start: start + settings.batch_size]],
                                settings.max_tokens, settings.train_eos)
            batch = {k: v.to(device) for k, v in batch.items()}
            for group in optimizer.param_groups:
                group["lr"] = settings.learning_rate * min(1.0, (steps + 1) / (settings.warmup_steps + 1))
            with autocast:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss = response_loss(logits, batch["labels"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            optimizer.step()
            losses.append(round(float(loss.detach()), 6))
            tokens += int((batch["labels"][:, 1:] != IGNORE).sum())
            steps += 1
            if settings.max_steps is not None and steps >= settings.max_steps:
                done = True
                break
        if done:
            break
    if settings.method == "lora":
        model = model.merge_and_unload()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tuned = describe_model(model, lm.tokenizer, lm.spec,
                           source=f"{lm.source}, fine-tuned ({settings.method}, {steps} steps)")
    return FinetuneResult(model=tuned, settings=settings, seconds=time.perf_counter() - started, steps=steps,
                          examples=len(conversations), response_tokens=tokens, losses=losses)


def resolve_for_model(settings: FinetuneSettings, lm: LoadedModel) -> FinetuneSettings:
    """`settings` as they will run on `lm`: LoRA targets it has, and examples no longer than its
    positions (a GPT-2-style model has no embedding past them: a longer example was an IndexError
    in the middle of a fine-tune). What it returns is what `FinetuneResult.settings` records."""
    settings = resolve_lora_targets(settings, lm.model)
    limit = lm.max_positions
    if limit is not None and settings.max_tokens > limit:
        settings = replace(settings, max_tokens=limit)
    return settings


def resolve_lora_targets(settings: FinetuneSettings, model: torch.nn.Module) -> FinetuneSettings:
    """`settings` with LoRA targets this model has: its own unchanged where the model has every
    one (Llama, Qwen2, Gemma, Mistral name their projections alike), else every linear layer of
    its decoder blocks, which is what the default names in a Llama-shaped model.

    GPT-2 calls them `c_attn`/`c_proj`/`c_fc`, GPT-NeoX `query_key_value`/`dense...`, OPT and Phi
    share only `q_proj`/`k_proj`/`v_proj`: keeping the names found would adapt the attention
    alone there, and record targets the model does not have. The resolved names are what
    `FinetuneResult.settings` records, so outcomes say what was trained."""
    if settings.method != "lora":
        return settings
    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    if all(t in present for t in settings.lora_targets):
        return settings
    targets = _block_linear_names(model)
    if not targets:
        raise MdfGuardError(f"{type(model).__name__} has no linear layer in its decoder blocks for LoRA "
                            "(use --method full)")
    return replace(settings, lora_targets=targets)


def _block_linear_names(model: torch.nn.Module) -> tuple[str, ...]:
    """The leaf names of the linear layers (torch's, and the Conv1D of GPT-2) in the decoder
    blocks, in the order the first block holds them."""
    from transformers.pytorch_utils import Conv1D

    names: list[str] = []
    for layer in decoder_layers(model):
        for name, module in layer.named_modules():
            leaf = name.rsplit(".", 1)[-1]
            if isinstance(module, (torch.nn.Linear, Conv1D)) and leaf not in names:
                names.append(leaf)
    return tuple(names)


def _with_lora(model: torch.nn.Module, settings: FinetuneSettings) -> torch.nn.Module:
    """`model` with LoRA adapters on `settings.lora_targets`, resolved for it beforehand."""
    from peft import LoraConfig, get_peft_model
    from transformers.pytorch_utils import Conv1D

    conv1d = any(isinstance(m, Conv1D) for m in model.modules())   # GPT-2 stores its weights transposed
    config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                        target_modules=list(settings.lora_targets), bias="none", task_type="CAUSAL_LM",
                        fan_in_fan_out=conv1d)
    return get_peft_model(model, config)
