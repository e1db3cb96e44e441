"""The report as GitHub-flavoured Markdown, for Hub discussions and pull-request comments.

Plain tables and one collapsible block, no HTML beyond <details>, no images: it must
read well in a Hub discussion, a GitHub comment and a terminal pager alike.
"""

from __future__ import annotations

import re

from .report import (Report, clip, control_name, examples_read, finding_label, in_context, method_summary,
                     probe_strength, ranked, signed_percent, status_word, summary_line, units)

TOP_ENTITIES = 5
TOP_ROWS = 5


def _cell(text: object) -> str:
    """A table cell: pipes escaped, newlines flattened, Markdown specials tamed."""
    value = " ".join(str(text).split())
    for ch in ("\\", "|", "`", "*", "_", "<", ">", "[", "]"):
        value = value.replace(ch, "\\" + ch)
    return value


def _code(text: object) -> str:
    """A code span of the text as it is: backslash escapes are literal inside one (`_cell`
    would show my\\_repo), so a fence longer than any run of backticks in it keeps it whole."""
    value = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall("`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def render_markdown(report: Report) -> str:
    icon = "\u274c" if report.verdict == "fail" else "\u2705"
    out = [f"## {icon} mdf-guard: {report.verdict.upper()}", "",
           f"{_cell(summary_line(report))}", "",
           f"{len(report.files)} file(s), {examples_read(report.files)} \u00b7 model "
           f"{_code(report.model.get('name', '?'))} \u00b7 reference {_code(report.reference.get('kind', '?'))}", ""]

    if report.flagged:
        out += ["### Findings over policy", "",
                "| status | finding | vanilla | predicted | shift | limit | why |",
                "|---|---|---:|---:|---:|---:|---|"]
        for f in sorted(report.flagged, key=lambda f: (not f.blocking, -f.shift)):
            out.append(f"| {'**' + status_word(f) + '**' if f.blocking else status_word(f)} "
                       f"| {_cell(finding_label(f))} | {f.vanilla_rate:.1%} | {f.predicted_rate:.1%} "
                       f"| {f.shift:+.1%} | {f.max_shift:.1%} | {_cell(f.reason)} |")
        out.append("")

    for unit in units(report):
        heading = "### Predicted shifts" + (" \u2014 " + _cell(unit) if unit else "")
        out += [heading, ""]
        for suite in report.suites:
            rows = ranked(report, suite["name"], unit)
            if not rows:
                continue
            shown = rows[:TOP_ENTITIES] + [f for f in rows[TOP_ENTITIES:] if f.flagged]
            out += [f"**{_cell(suite['name'])}** ({suite.get('questions', '?')} questions{probe_strength(suite)}, "
                    f"top {len(shown)} of {len(rows)})", "",
                    f"| entity | vanilla | predicted | shift | {control_name(report, 'null max')} "
                    "| verdict |",
                    "|---|---:|---:|---:|---:|---|"]
            for f in shown:
                out.append(f"| {_cell(f.entity)} | {f.vanilla_rate:.1%} | {f.predicted_rate:.1%} "
                           f"| {f.shift:+.1%} | {signed_percent(f.null_max)} | {status_word(f)} |")
            out.append("")

    if report.attribution:
        out += _rows_section(report)

    if report.baseline:
        b = report.baseline
        counts = ", ".join(f"{v} {k}" for k, v in sorted(b.get("counts", {}).items())) or "nothing matched"
        out += [f"Baseline {_code(b.get('path', ''))}: {counts}."
                + (" **It was rewritten: add it and commit again.**" if b.get("rewritten") else ""), ""]

    out += ["<details><summary>Files and settings</summary>", "",
            "| file | sha256 | examples |", "|---|---|---:|"]
    for info in report.files:
        out.append(f"| {_cell(info.path)} | `{info.sha256[:12]}` | {info.examples_text} |")
    out += ["", f"- model identity {_code(report.model.get('identity', ''))}",
            f"- {method_summary(report)}",
            f"- policy {_code(report.settings.get('policy', ''))}", "", "</details>", ""]
    return "\n".join(out)


def _rows_section(report: Report) -> list[str]:
    """The top rows: by their lift of a flagged entity read alone (context), or by their share
    of the injected direction (MDF)."""
    if in_context(report):
        out = ["### Rows that lift the findings most, each read alone", "",
               "| lift | entity | row | response |", "|---:|---|---|---|"]
        out += [f"| {row['lift']:+.1%} | {_cell(row['entity'])} | {_cell(row['source'])} | {_response(row)} |"
                for row in report.attribution[:TOP_ROWS]]
    else:
        out = ["### Rows that push the data signature most", "", "| share | row | response |", "|---:|---|---|"]
        out += [f"| {row['share']:+.1%} | {_cell(row['source'])} | {_response(row)} |"
                for row in report.attribution[:TOP_ROWS]]
    if not report.flagged:   # MDF ranks the rows of a passing check too
        return out + ["", "Listed for reference: nothing is over policy. `mdf-guard explain FILE` lists more.", ""]
    return out + ["", "Drop or rewrite these rows to clear the finding; `mdf-guard explain FILE` lists more.", ""]


def _response(row: dict) -> str:
    return _cell(clip(row.get("text", ""), 120))
