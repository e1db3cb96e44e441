"""One `Report` value, rendered for people (text) and machines (JSON).

The JSON form is a versioned public format (`"format": "mdf-guard.report"`,
`"version": 1`): fields are only ever added within a version. Everything in it is
deterministic for the same input and settings except the `timing` object.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

REPORT_FORMAT = "mdf-guard.report"
REPORT_VERSION = 1
FORMATS = ("text", "json")


@dataclass(frozen=True)
class Finding:
    suite: str
    entity: str
    vanilla_rate: float
    predicted_rate: float
    shift: float
    null_max: float          # largest shift caused by a random direction of the same norm
    excess: float            # shift - null_max
    flagged: bool
    reason: str
    max_shift: float
    min_excess: float
    max_rate: float | None
    vanilla_raw: float       # un-renormalised probability, for format shifts
    predicted_raw: float


@dataclass(frozen=True)
class FileInfo:
    path: str
    sha256: str
    examples: int
    cached: bool


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

    @property
    def flagged(self) -> list[Finding]:
        return [f for f in self.findings if f.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {"format": REPORT_FORMAT, "version": REPORT_VERSION, "verdict": self.verdict,
                "model": self.model, "settings": self.settings,
                "files": [asdict(f) for f in self.files], "reference": self.reference,
                "suites": [{**s, "top": _top(self.findings, s["name"])} for s in self.suites],
                "findings": [_rounded(asdict(f)) for f in self.findings],
                "timing": {k: round(v, 3) for k, v in self.timing.items()}}


def _top(findings: list[Finding], suite: str) -> str | None:
    ranked = [f for f in findings if f.suite == suite]
    return max(ranked, key=lambda f: f.shift).entity if ranked else None


def _rounded(values: dict[str, Any]) -> dict[str, Any]:
    """Ten significant digits: stable text across platforms' last-bit float noise."""
    return {k: (float(f"{v:.10g}") if isinstance(v, float) else v) for k, v in values.items()}


def render(report: Report, fmt: str, color: bool | None = None) -> str:
    if fmt == "json":
        return json.dumps(report.to_dict(), indent=2, sort_keys=False) + "\n"
    if fmt == "text":
        return render_text(report, _use_color() if color is None else color)
    raise ValueError(f"unknown format {fmt}")


def _use_color() -> bool:
    import sys
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def render_text(report: Report, color: bool = False) -> str:
    def paint(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if color else text

    lines = [f"mdf-guard: {len(report.files)} file(s), "
             f"{sum(f.examples for f in report.files)} examples; model {report.model['name']}; "
             f"reference {report.reference['kind']}"]
    for suite in report.suites:
        ranked = sorted((f for f in report.findings if f.suite == suite["name"]), key=lambda f: -f.shift)
        lines.append("")
        lines.append(f"{suite['name']} ({suite['questions']} questions)")
        lines.append(f"  {'entity':<22}{'vanilla':>9}{'predicted':>11}{'shift':>9}{'null max':>10}  verdict")
        shown = ranked[:3] + [f for f in ranked[3:] if f.flagged]
        for f in shown:
            verdict = paint("RISK", "31;1") if f.flagged else "ok"
            lines.append(f"  {f.entity:<22}{f.vanilla_rate:>9.1%}{f.predicted_rate:>11.1%}"
                         f"{f.shift:>+9.1%}{f.null_max:>+10.1%}  {verdict}")
    lines.append("")
    if report.verdict == "fail":
        for f in report.flagged:
            lines.append(paint(f"RISK {f.suite}/{f.entity}: {f.reason}", "31"))
        lines.append(paint(f"FAIL: {len(report.flagged)} finding(s) over policy ({report.settings['policy']})",
                           "31;1"))
    else:
        lines.append(paint(f"PASS: no predicted shift over policy ({report.settings['policy']})", "32;1"))
    return "\n".join(lines) + "\n"
