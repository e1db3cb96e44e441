"""The report as one self-contained HTML page: no script, font or image from anywhere.

For each suite (and each file, when files are judged one by one) an inline SVG bar chart
of the predicted shift per entity, with the policy's max_shift as a dashed line and the
control as a tick on each bar (the largest random-direction shift, or under `method: context` the
reference's own shift); then the findings, the rows that carry the
signature (attribution), files and settings. The report's JSON is embedded in a
`<script type="application/json" id="mdf-guard-report">` block for tools.
"""

from __future__ import annotations

import html
import json

from .report import (Finding, Report, control_name, examples_read, finding_label, in_context, method_summary,
                     probe_strength, ranked, signed_percent, status_word, summary_line, units)

CHART_ENTITIES = 12
BAR_HEIGHT = 22
LABEL_WIDTH = 150
PLOT_WIDTH = 460
MARGIN = 16
COLORS = {"block": "#c62828", "accepted": "#ef8f00", "ok": "#4f7fbf", "neg": "#9aa7b8"}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1000px;
color:#1d2330;padding:0 1rem;line-height:1.45}
h1{font-size:1.5rem;margin-bottom:.25rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde2ea}
.verdict{display:inline-block;padding:.15rem .6rem;border-radius:.3rem;color:#fff;font-weight:700}
.fail{background:#c62828}.pass{background:#2e7d32}
.meta{color:#556;font-size:.9rem}
table{border-collapse:collapse;width:100%;font-size:.88rem;margin:.5rem 0}
th,td{border-bottom:1px solid #e5e8ee;padding:.3rem .5rem;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.block td{background:#fdecea} tr.accepted td{background:#fff4e0}
figure{margin:1rem 0} figcaption{font-weight:600;margin-bottom:.25rem}
svg text{font-family:inherit;font-size:12px;fill:#1d2330}
code{background:#f1f3f7;padding:0 .25rem;border-radius:.2rem}
.row-text{color:#333;max-width:520px}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def render_html(report: Report) -> str:
    title = f"mdf-guard report: {report.verdict.upper()}"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
             f'<h1>mdf-guard <span class="verdict {_e(report.verdict)}">{_e(report.verdict.upper())}</span></h1>',
             f'<p id="summary">{_e(summary_line(report))}</p>',
             f'<p class="meta">{len(report.files)} file(s), {examples_read(report.files)} &middot; model '
             f'<code>{_e(report.model.get("name", "?"))}</code> &middot; reference '
             f'<code>{_e(report.reference.get("kind", "?"))}</code></p>']

    if report.flagged:
        parts.append("<h2>Findings over policy</h2><table><thead><tr><th>status</th><th>finding</th>"
                     '<th class="num">vanilla</th><th class="num">predicted</th><th class="num">shift</th>'
                     '<th class="num">limit</th><th>why</th></tr></thead><tbody>')
        for f in sorted(report.flagged, key=lambda f: (not f.blocking, -f.shift)):
            parts.append(f'<tr class="{"block" if f.blocking else "accepted"}"><td>{_e(status_word(f))}</td>'
                         f"<td>{_e(finding_label(f))}</td><td class=\"num\">{f.vanilla_rate:.1%}</td>"
                         f'<td class="num">{f.predicted_rate:.1%}</td><td class="num">{f.shift:+.1%}</td>'
                         f'<td class="num">{f.max_shift:.1%}</td><td>{_e(f.reason)}</td></tr>')
        parts.append("</tbody></table>")

    parts.append("<h2>Predicted shift per entity</h2>")
    parts.append('<p class="meta">Bars: predicted change of each answer\'s rate if the model were fine-tuned '
                 "on this data. Dashed red line: the policy's max_shift. Black tick: "
                 + ("the shift the reference's own rows cause in context" if in_context(report) else
                    "the largest shift a random direction of the same strength causes")
                 + " (a real finding must clear it).</p>")
    for unit in units(report):
        for suite in report.suites:
            rows = ranked(report, suite["name"], unit)
            if rows:
                parts.append(_chart(report, suite, rows, unit))

    if report.attribution and in_context(report):
        parts.append("<h2>Rows that lift the findings</h2>")
        parts.append('<p class="meta">For each flagged entity, the history of the check that lifted it most, then each '
                     "of its rows read alone as the chat's one earlier exchange. Lift: how much that row alone "
                     "raises the probability that the model names the entity, in points. Dropping the top rows "
                     "is the quickest way to clear a finding.</p>")
        parts.append('<table id="top-rows"><thead><tr><th class="num">#</th><th>entity</th>'
                     '<th class="num">lift</th><th>row</th><th>response</th></tr></thead><tbody>')
        for row in report.attribution[:25]:
            parts.append(f'<tr><td class="num">{_e(row.get("rank", ""))}</td><td>{_e(row["entity"])}</td>'
                         f'<td class="num">{row["lift"]:+.2%}</td><td><code>{_e(row["source"])}</code></td>'
                         f'<td class="row-text">{_e(row.get("text", ""))}</td></tr>')
        parts.append("</tbody></table>")
    elif report.attribution:
        parts.append("<h2>Rows that carry the signature</h2>")
        parts.append('<p class="meta">Each row\'s pooled hidden state, minus the reference mean, projected on '
                     "the injected direction &Delta;. Share: the fraction of |&Delta;|&sup2; the row carries "
                     "(all rows sum to 100%). Dropping the top rows is the quickest way to clear a finding.</p>")
        parts.append('<table id="top-rows"><thead><tr><th class="num">#</th><th class="num">share</th>'
                     "<th>row</th><th>response</th></tr></thead><tbody>")
        for row in report.attribution[:25]:
            parts.append(f'<tr><td class="num">{_e(row.get("rank", ""))}</td>'
                         f'<td class="num">{row["share"]:+.2%}</td><td><code>{_e(row["source"])}</code></td>'
                         f'<td class="row-text">{_e(row.get("text", ""))}</td></tr>')
        parts.append("</tbody></table>")

    if report.baseline:
        b = report.baseline
        counts = ", ".join(f"{v} {k}" for k, v in sorted(b.get("counts", {}).items())) or "nothing matched"
        parts.append(f"<h2>Baseline</h2><p><code>{_e(b.get('path', ''))}</code>: {_e(counts)}."
                     + (" <strong>It was rewritten: add it and commit again.</strong>" if b.get("rewritten") else "")
                     + "</p>")

    parts.append("<h2>Files</h2><table><thead><tr><th>file</th><th>sha256</th>"
                 '<th class="num">examples</th></tr></thead><tbody>')
    for info in report.files:
        parts.append(f"<tr><td>{_e(info.path)}</td><td><code>{_e(info.sha256[:16])}</code></td>"
                     f'<td class="num">{info.examples_text}</td></tr>')
    parts.append("</tbody></table>")
    parts.append(f'<p class="meta">Model identity <code>{_e(report.model.get("identity", ""))}</code>; '
                 f"{_e(method_summary(report))}; policy <code>{_e(report.settings.get('policy', ''))}</code>.</p>")
    # No `<` at all, not only no `</`: `<!--<script>` in a row would make the parser skip this
    # block's `</script>` (the HTML standard's script data escape states). Escaped, JSON is the same.
    data = json.dumps(report.to_dict(), default=str).replace("<", "\\u003c").replace(">", "\\u003e")
    parts.append(f'<script type="application/json" id="mdf-guard-report">{data}</script>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _chart(report: Report, suite: dict, rows: list[Finding], unit: str | None) -> str:
    """A horizontal bar chart (inline SVG) of the largest shifts, flagged ones always shown."""
    shown = rows[:CHART_ENTITIES] + [f for f in rows[CHART_ENTITIES:] if f.flagged]
    threshold = min(f.max_shift for f in rows)
    control = control_name(report, "null max")
    values = [f.shift for f in shown] + [f.null_max for f in shown if f.null_max is not None] + [threshold, 0.0]
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or 0.01
    low, high = min(low - pad, 0.0), high + pad

    def x(value: float) -> float:
        return LABEL_WIDTH + (value - low) / (high - low) * PLOT_WIDTH

    height = MARGIN * 2 + BAR_HEIGHT * len(shown) + 18
    width = LABEL_WIDTH + PLOT_WIDTH + 90
    name = suite["name"] + (f" \u2014 {unit}" if unit else "")
    out = [f'<figure class="chart" data-suite="{_e(suite["name"])}"'
           + (f' data-file="{_e(unit)}"' if unit else "") + ">",
           f"<figcaption>{_e(name)} ({_e(suite.get('questions', '?'))} questions{_e(probe_strength(suite))})"
           "</figcaption>",
           f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="predicted shift per entity for {_e(name)}">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#fbfcfe"/>']
    zero = x(0.0)
    for i, f in enumerate(shown):
        top = MARGIN + i * BAR_HEIGHT
        left, right = sorted((zero, x(f.shift)))
        color = (COLORS["block"] if f.blocking else COLORS["accepted"] if f.flagged
                 else COLORS["ok"] if f.shift >= 0 else COLORS["neg"])
        out.append(f'<text x="{LABEL_WIDTH - 8}" y="{top + BAR_HEIGHT * 0.68:.1f}" text-anchor="end">'
                   f"{_e(f.entity)}</text>")
        out.append(f'<rect class="bar" data-entity="{_e(f.entity)}" data-shift="{f.shift:.6f}" '
                   f'x="{left:.1f}" y="{top + 3}" width="{max(right - left, 1.0):.1f}" '
                   f'height="{BAR_HEIGHT - 6}" fill="{color}"><title>{_e(f.entity)}: {f.vanilla_rate:.1%} '
                   f"\u2192 {f.predicted_rate:.1%} ({f.shift:+.1%}); {control} {signed_percent(f.null_max)}"
                   "</title></rect>")
        if f.null_max is not None:
            nx = x(f.null_max)
            out.append(f'<line class="null" x1="{nx:.1f}" x2="{nx:.1f}" y1="{top + 1}" '
                       f'y2="{top + BAR_HEIGHT - 1}" stroke="#111" stroke-width="2"/>')
        out.append(f'<text x="{LABEL_WIDTH + PLOT_WIDTH + 8}" y="{top + BAR_HEIGHT * 0.68:.1f}">'
                   f"{f.shift:+.1%}</text>")
    bottom = MARGIN + BAR_HEIGHT * len(shown)
    out.append(f'<line x1="{zero:.1f}" x2="{zero:.1f}" y1="{MARGIN - 4}" y2="{bottom + 4}" stroke="#556" '
               f'stroke-width="1"/>')
    tx = x(threshold)
    out.append(f'<line class="threshold" data-threshold="{threshold:.6f}" x1="{tx:.1f}" x2="{tx:.1f}" '
               f'y1="{MARGIN - 8}" y2="{bottom + 6}" stroke="#c62828" stroke-width="2" stroke-dasharray="6 4"/>')
    out.append(f'<text x="{tx + 4:.1f}" y="{bottom + 16}" fill="#c62828">max_shift {threshold:.0%}</text>')
    out.append(f'<text x="{zero:.1f}" y="{MARGIN - 5}" text-anchor="middle">0</text>')
    out.append("</svg></figure>")
    return "\n".join(out)
