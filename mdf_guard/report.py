"""One `Report` value, rendered for people (text, Markdown, HTML) and machines (JSON, SARIF).

The JSON form is a versioned public format (`"format": "mdf-guard.report"`,
`"version": 2`): fields are only ever added within a version. Everything in it is
deterministic for the same input and settings except the `timing` object and each
file's `cached` flag (whether its reading came from the cache). Version 2
(from version 1): a suite where no candidate could be flagged skips its controls
(`"controls_skipped": true`), and its findings' `null_max`, `excess` and `mirror_shift`
are null; they are also null where a policy runs no such control (`null_seeds: 0`).

Markdown, SARIF and HTML live in their own modules (`report_markdown`, `report_sarif`,
`report_html`); `render` dispatches to them, so callers only ever name a format.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from .policy import IN_CONTEXT, MDF

REPORT_FORMAT = "mdf-guard.report"
REPORT_VERSION = 2
FORMATS = ("text", "json", "markdown", "sarif", "html")
BASELINE_STATUSES = ("new", "grown", "accepted", "rejected")


@dataclass(frozen=True)
class Finding:
    suite: str
    entity: str
    vanilla_rate: float
    predicted_rate: float
    shift: float
    null_max: float | None   # largest shift caused by a random direction of the same norm (None: not run)
    excess: float | None     # shift - max(null_max, mirror_shift), over the controls that ran
    flagged: bool
    reason: str
    max_shift: float
    min_excess: float
    max_rate: float | None
    vanilla_raw: float       # un-renormalised probability, for format shifts
    predicted_raw: float
    mirror_shift: float | None = None   # shift when the opposite direction -alpha*delta is injected
    # Set when each dataset file is checked on its own (baseline mode, --reference HEAD):
    file: str | None = None          # the dataset file this finding is about
    shard: str | None = None         # its sha256, the baseline's key
    # Set when a baseline was applied to a flagged finding: new, grown, accepted or rejected.
    baseline: str | None = None
    accepted_shift: float | None = None   # the shift the baseline accepted, for "grown"

    @property
    def blocking(self) -> bool:
        """Over policy and not accepted by the baseline."""
        return self.flagged and self.baseline != "accepted"


@dataclass(frozen=True)
class FileInfo:
    path: str
    sha256: str
    examples: int                     # rows read
    cached: bool
    rows: int | None = None           # rows in the file: more than `examples` when early stop read a sample

    @property
    def file_rows(self) -> int:
        """Rows in the file; `examples` where a report predates the `rows` field."""
        return self.rows if self.rows is not None else self.examples

    @property
    def examples_text(self) -> str:
        """"812 of 3000" when early stop read a sample of the file, else "3000"."""
        return f"{self.examples} of {self.file_rows}" if self.file_rows > self.examples else str(self.examples)


def examples_read(files: list[FileInfo]) -> str:
    """How much data a report stands on: "3000 examples", or "812 of 3000 examples read (early stop)"."""
    read = sum(f.examples for f in files)
    rows = sum(f.file_rows for f in files)
    return f"{read} of {rows} examples read (early stop)" if rows > read else f"{read} examples"


@dataclass
class Report:
    verdict: str                      # "pass" or "fail"
    model: dict[str, Any]
    settings: dict[str, Any]
    files: list[FileInfo]
    reference: dict[str, Any]
    suites: list[dict[str, Any]]      # name, kind, questions
    findings: list[Finding]
    timing: dict[str, float] = field(default_factory=dict)
    # Rows ranked by their contribution to the contrast Δ (MDF, attribution.py) or by how much
    # each lifts a flagged entity read alone (context, context_attribution.py); each a dict
    # with file, source ("path:line" or "path:row N"), line (or None), rank and text, and
    # share and score (MDF) or suite, entity, lift, window and window_lift (context).
    attribution: list[dict[str, Any]] = field(default_factory=list)
    # Set when a baseline was applied: path, counts per status, rewritten (bool), changes.
    baseline: dict[str, Any] = field(default_factory=dict)

    @property
    def flagged(self) -> list[Finding]:
        return [f for f in self.findings if f.flagged]

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    def to_dict(self) -> dict[str, Any]:
        return {"format": REPORT_FORMAT, "version": REPORT_VERSION, "verdict": self.verdict,
                "model": self.model, "settings": self.settings,
                "files": [asdict(f) for f in self.files], "reference": self.reference,
                "suites": [{**s, "top": _top(self.findings, s["name"])} for s in self.suites],
                "findings": [_rounded(asdict(f)) for f in self.findings],
                "attribution": [_rounded(dict(r)) for r in self.attribution],
                "baseline": self.baseline,
                "timing": {k: round(v, 3) for k, v in self.timing.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Report":
        """The inverse of `to_dict` (for cached results and reports read back from JSON)."""
        if data.get("format") != REPORT_FORMAT or data.get("version") != REPORT_VERSION:
            raise ValueError(f"not a {REPORT_FORMAT} version {REPORT_VERSION} document")
        finding_fields = set(Finding.__dataclass_fields__)
        return cls(verdict=data["verdict"], model=data["model"], settings=data["settings"],
                   files=[FileInfo(**f) for f in data["files"]], reference=data["reference"],
                   suites=[{k: v for k, v in s.items() if k != "top"} for s in data["suites"]],
                   findings=[Finding(**{k: v for k, v in f.items() if k in finding_fields})
                             for f in data["findings"]],
                   timing=dict(data.get("timing") or {}), attribution=list(data.get("attribution") or []),
                   baseline=dict(data.get("baseline") or {}))


def _top(findings: list[Finding], suite: str) -> str | None:
    ranked = [f for f in findings if f.suite == suite]
    return max(ranked, key=lambda f: f.shift).entity if ranked else None


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    """Ten significant digits: stable text across platforms' last-bit float noise."""
    return {k: (float(f"{v:.10g}") if isinstance(v, float) else v) for k, v in values.items()}


def render(report: Report, fmt: str, color: bool | None = None) -> str:
    """The report as text in one of FORMATS. `color` only affects "text"; None: auto (a
    terminal on stdout and no NO_COLOR in the environment, https://no-color.org)."""
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"
    if fmt == "text":
        return render_text(report, _use_color() if color is None else (color and not _no_color()))
    if fmt == "markdown":
        from .report_markdown import render_markdown
        return render_markdown(report)
    if fmt == "sarif":
        from .report_sarif import render_sarif
        return render_sarif(report)
    if fmt == "html":
        from .report_html import render_html
        return render_html(report)
    raise ValueError(f"unknown format {fmt} (known: {', '.join(FORMATS)})")


def _no_color() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def _use_color() -> bool:
    import sys
    return sys.stdout.isatty() and not _no_color()


def finding_label(f: Finding) -> str:
    """`suite/entity`, with the file when findings are per file."""
    return f"{f.suite}/{f.entity}" + (f" in {f.file}" if f.file else "")


def status_word(f: Finding) -> str:
    """RISK, ok, or the baseline's word for a flagged finding."""
    if not f.flagged:
        return "ok"
    return {"accepted": "accepted", "grown": "RISK (grown)", "new": "RISK (new)",
            "rejected": "RISK (rejected)"}.get(f.baseline or "", "RISK")


def summary_line(report: Report) -> str:
    """One sentence: the verdict and why; shared by every human format."""
    policy = report.settings.get("policy", "policy")
    accepted = [f for f in report.flagged if not f.blocking]
    if report.verdict == "fail":
        return f"FAIL: {len(report.blocking)} finding(s) over policy ({policy})"
    if accepted:
        return f"PASS: {len(accepted)} finding(s) over policy, all accepted by the baseline ({policy})"
    return f"PASS: no predicted shift over policy ({policy})"


def ranked(report: Report, suite: str, file: str | None = None) -> list[Finding]:
    """A suite's findings, largest shift first (one file's when findings are per file)."""
    return sorted((f for f in report.findings if f.suite == suite and (file is None or f.file == file)),
                  key=lambda f: (-f.shift, f.entity))


def units(report: Report) -> list[str | None]:
    """The files findings are grouped by ([None] when the check pooled all files)."""
    seen: list[str | None] = []
    for f in report.findings:
        if f.file not in seen:
            seen.append(f.file)
    return seen or [None]


def render_text(report: Report, color: bool = False) -> str:
    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if color else text

    lines = [f"mdf-guard: {len(report.files)} file(s), "
             f"{examples_read(report.files)}; model {report.model['name']}; "
             f"reference {report.reference['kind']}"]
    for unit in units(report):
        if unit is not None:
            lines += ["", f"== {unit}"]
        for suite in report.suites:
            rows = ranked(report, suite["name"], unit)
            if not rows:
                continue
            lines.append("")
            lines.append(f"{suite['name']} ({suite['questions']} questions{probe_strength(suite)})")
            mirror = not in_context(report)   # the reading in context has no mirror image
            mirror_width = 9 if mirror else 0
            lines.append(f"  {'entity':<26}{'vanilla':>9}{'predicted':>11}{'shift':>9}{control_name(report):>10}"
                         f"{'mirror' if mirror else '':>{mirror_width}}  verdict")
            for f in rows[:3] + [f for f in rows[3:] if f.flagged]:
                word = status_word(f)
                verdict = paint(word, "31;1") if f.blocking else paint(word, "33") if f.flagged else word
                lines.append(f"  {f.entity:<26}{f.vanilla_rate:>9.1%}{f.predicted_rate:>11.1%}"
                             f"{f.shift:>+9.1%}{signed_percent(f.null_max):>10}"
                             f"{signed_percent(f.mirror_shift) if mirror else '':>{mirror_width}}"
                             f"  {verdict}")
    if report.attribution and in_context(report):
        lines += ["", "rows that lift a flagged entity most, each read alone (mdf-guard explain FILE for more):"]
        for row in report.attribution[:5]:
            lines.append(f"  {row['lift']:>+7.1%}  {clip(row['entity'], 16):<16}  {row['source']}: "
                         f"{clip(row.get('text', ''), 60)}")
    elif report.attribution:
        lines += ["", "rows that push the data signature most (mdf-guard explain FILE for more):"]
        for row in report.attribution[:5]:
            lines.append(f"  {row['share']:>+7.1%}  {row['source']}: {clip(row.get('text', ''), 60)}")
    lines.append("")
    for f in report.flagged:
        if f.blocking:
            lines.append(paint(f"RISK {finding_label(f)}: {f.reason}"
                               + (f" [{f.baseline}]" if f.baseline else ""), "31"))
        else:
            lines.append(paint(f"accepted {finding_label(f)}: {f.reason}", "33"))
    if report.baseline.get("rewritten"):
        lines.append(paint(f"baseline {report.baseline['path']} was rewritten: "
                           f"git add it and commit again", "33;1"))
    lines.append(paint(summary_line(report), "31;1" if report.verdict == "fail" else "32;1"))
    return "\n".join(lines) + "\n"


def probe_strength(suite: dict) -> str:
    """The injection strength a suite was probed at and how much of the vanilla model's
    probability of naming a candidate survived it (", α 2, answers kept 54%", or "grew to 116% of
    vanilla" where the injection raised it): a small
    share means the suite's predicted rates stand on little probability. A suite whose
    controls were skipped says so, so that its empty control columns are not read as zero."""
    skipped = ", controls skipped (nothing over policy)" if suite.get("controls_skipped") else ""
    if suite.get("alpha") is None or not suite.get("answer_mass"):
        return skipped
    vanilla, injected = suite["answer_mass"]
    kept = injected / vanilla if vanilla > 0 else 0.0
    if kept > 1:   # the injection made naming a candidate likelier: nothing was lost, "kept 116%" misread
        return f", α {suite['alpha']:g}, answers grew to {kept:.0%} of vanilla{skipped}"
    return f", α {suite['alpha']:g}, answers kept {kept:.0%}{skipped}"


def report_method(report: Report) -> str:
    """The method behind a report's shifts (reports from before there was a choice are MDF's)."""
    return report.settings.get("method", MDF)


def in_context(report: Report) -> bool:
    """Whether the check read the rows in context (`method: context`) rather than injecting."""
    return report_method(report) == IN_CONTEXT


def control_name(report: Report, mdf: str = "random") -> str:
    """What each finding's control is called: `mdf`'s word for the random directions, or the
    reference's rows under `method: context`."""
    return "reference" if in_context(report) else mdf


def method_summary(report: Report) -> str:
    """How the predictions were made, in one line, for the settings of the Markdown and HTML pages."""
    settings = report.settings
    questions = f"{settings.get('questions_per_suite')} questions per suite"
    if in_context(report):
        return (f"the rows read in context, {settings.get('rows_per_history')} to a history; {questions}; "
                "control: the reference's rows, read the same way")
    profile = settings.get("profile", {})
    return (f"layers {profile.get('layers')}, alpha {profile.get('alpha')}, pooling {profile.get('pooling')}; "
            f"{questions}; {settings.get('null_seeds')} random-direction null(s)")


def signed_percent(value: float | None) -> str:
    """A shift as "+1.2%", or "–" for a control that did not run."""
    return "\u2013" if value is None else f"{value:+.1%}"


def clip(text: str, width: int) -> str:
    """The text on one line, cut to `width` characters with an ellipsis."""
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"
