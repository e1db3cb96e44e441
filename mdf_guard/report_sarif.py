"""The report as SARIF 2.1.0, for code-scanning dashboards (GitHub, GitLab, Azure DevOps).

- One rule per probe suite (`mdf-guard/<suite>`): "fine-tuning on this data is predicted
  to shift <suite> behaviour".
- One result per flagged finding **per dataset file** it is about (every file of a pooled
  check; its own file when files are judged one by one), located at the file.
- Where attribution exists, one result per top row (`mdf-guard/row`), located at the
  row's line: the entity it lifts (context), or the findings of its file (MDF).
- The baseline maps onto SARIF's own vocabulary: `baselineState` (new / updated for
  grown / unchanged) and an external `suppression` (status accepted, or rejected for an
  auditor's rejection, which does not suppress).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import quote

from . import __version__
from .errors import EXIT_BASELINE_REWRITTEN, EXIT_PASS, EXIT_RISK
from .report import Finding, Report, in_context

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
ROW_RULE = "mdf-guard/row"
_BASELINE_STATE = {"new": "new", "grown": "updated", "accepted": "unchanged", "rejected": "unchanged"}


def _uri(path: str) -> tuple[str, str | None]:
    """(uri, uriBaseId): relative to the working folder when inside it, else a file URI.
    Percent-encoded, as `as_uri` does: a raw '#' would start a fragment ("my data#1.jsonl"
    read as "my data"), and a space or '%' is no URI."""
    resolved = Path(path).resolve()
    try:
        return quote(resolved.relative_to(Path.cwd().resolve()).as_posix()), "SRCROOT"
    except ValueError:
        return resolved.as_uri(), None


def _row_message(report: Report, row: dict) -> str:
    """What a top row does: lifts a flagged entity read alone (context), or carries a share of
    the direction behind the findings of its file (MDF)."""
    if in_context(report):
        return (f"read alone, this row raises the probability that the model names {row['entity']} by "
                f"{row['lift']:.1%} (rank {row['rank']}; its history {row['window']} lifts {row['entity']} "
                f"by {row['window_lift']:+.1%})")
    related = [f"{f.suite}/{f.entity}" for f in report.flagged if f.file is None or f.file == row.get("unit")]
    return (f"this row carries {row['share']:.1%} of the contrast direction behind {', '.join(related)} "
            f"(rank {row['rank']})")


def _location(path: str, line: int | None = None) -> dict:
    uri, base = _uri(path)
    artifact = {"uri": uri, **({"uriBaseId": base} if base else {})}
    physical: dict = {"artifactLocation": artifact}
    if line is not None:
        physical["region"] = {"startLine": int(line)}
    return {"physicalLocation": physical}


def _level(f: Finding) -> str:
    return "error" if f.blocking else "note"


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def _how(report: Report) -> str:
    if in_context(report):
        return ("mdf-guard reads the data's rows as the earlier turns of a chat with the vanilla model and "
                "measures how its answers to the suite's probe questions shift, against the reference's rows "
                "read the same way.")
    return ("mdf-guard injects the data's contrasted signature into the vanilla model and measures how its "
            "answers to the suite's probe questions shift, against random directions of the same strength.")


def _exit_code(report: Report) -> int:
    """The code `check` exits with for this report (cli.check): risk first, then a rewritten baseline."""
    if report.verdict == "fail":
        return EXIT_RISK
    return EXIT_BASELINE_REWRITTEN if report.baseline.get("rewritten") else EXIT_PASS


def render_sarif(report: Report) -> str:
    model = report.model.get("identity", "")   # not the fingerprint: a transformers upgrade is no new finding
    suites = [s["name"] for s in report.suites]
    rules = [{"id": f"mdf-guard/{name}", "name": f"PredictedShift{''.join(p.title() for p in name.split('_'))}",
              "shortDescription": {"text": f"Fine-tuning on this data is predicted to shift '{name}' behaviour"},
              "fullDescription": {"text": _how(report)},
              "defaultConfiguration": {"level": "error"},
              "properties": {"kind": s.get("kind", ""), "questions": s.get("questions")}}
             for name, s in zip(suites, report.suites)]
    rules.append({"id": ROW_RULE, "name": "RowContribution",
                  "shortDescription": {"text": "A row that carries much of the direction behind a finding"},
                  "defaultConfiguration": {"level": "warning"}})
    rule_index = {r["id"]: i for i, r in enumerate(rules)}

    results = []
    for f in report.flagged:
        files = [f.file] if f.file else [info.path for info in report.files]
        shards = {info.path: info.sha256 for info in report.files}
        for path in files:
            rule = f"mdf-guard/{f.suite}"
            result = {
                "ruleId": rule, "ruleIndex": rule_index.get(rule, 0), "level": _level(f),
                "message": {"text": f"{f.suite}/{f.entity}: predicted rate {f.vanilla_rate:.1%} -> "
                                    f"{f.predicted_rate:.1%} ({f.shift:+.1%}) if fine-tuned on this data; "
                                    f"{f.reason}"},
                "locations": [_location(path)],
                "partialFingerprints": {"mdfGuardFinding/v1": _fingerprint(
                    f.shard or shards.get(path, ""), f.suite, f.entity, model)},
                "properties": {"suite": f.suite, "entity": f.entity, "shift": f.shift,
                               "vanilla_rate": f.vanilla_rate, "predicted_rate": f.predicted_rate,
                               "null_max": f.null_max, "max_shift": f.max_shift,
                               "shard": f.shard or shards.get(path, "")},
            }
            if f.baseline:
                result["baselineState"] = _BASELINE_STATE[f.baseline]
                if f.baseline in ("accepted", "rejected"):
                    result["suppressions"] = [{"kind": "external", "status": f.baseline,
                                               "justification": "mdf-guard baseline "
                                               + str(report.baseline.get("path", ""))}]
            results.append(result)

    risky_files = {f.file for f in report.flagged} if any(f.file for f in report.flagged) else None
    for row in report.attribution:
        if not report.flagged or (risky_files is not None and row.get("unit") not in risky_files):
            continue
        if row.get("lift" if in_context(report) else "share", 0) <= 0:
            continue
        results.append({
            "ruleId": ROW_RULE, "ruleIndex": rule_index[ROW_RULE],
            "level": "warning" if report.verdict == "fail" else "note",
            "message": {"text": _row_message(report, row)},
            "locations": [_location(row["file"], row.get("line"))],
            # one result per row and entity it lifts (context): two entities, two results
            "partialFingerprints": {"mdfGuardRow/v1": _fingerprint(row["source"], str(row.get("text", "")),
                                                                   *([row["entity"]] if "entity" in row else []))},
            "properties": {key: row[key] for key in ("share", "score", "rank", "source", "suite", "entity", "lift",
                                                     "window", "window_lift") if key in row},
        })

    artifacts = []
    for info in report.files:
        uri, base = _uri(info.path)
        artifacts.append({"location": {"uri": uri, **({"uriBaseId": base} if base else {})},
                          "hashes": {"sha-256": info.sha256} if info.sha256 else {},
                          "properties": {"examples": info.examples}})
    run = {
        "tool": {"driver": {"name": "mdf-guard", "version": __version__, "semanticVersion": __version__,
                            "rules": rules}},
        "originalUriBaseIds": {"SRCROOT": {"uri": Path.cwd().resolve().as_uri() + "/"}},
        "artifacts": artifacts,
        "results": results,
        "invocations": [{"executionSuccessful": True, "exitCode": _exit_code(report)}],
        "properties": {"verdict": report.verdict, "model": report.model,
                       "reference": report.reference.get("kind"), "policy": report.settings.get("policy")},
    }
    document = {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2, default=str) + "\n"
