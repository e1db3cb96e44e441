"""Report formats: text (NO_COLOR), JSON round trip, Markdown, SARIF 2.1.0, HTML (+ Chromium),
and the row attribution behind the HTML's top rows."""

from __future__ import annotations

import html.parser
import dataclasses
import json
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from mdf_guard.report import FORMATS, FileInfo, Finding, Report, probe_strength, render

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


pytestmark = pytest.mark.usefixtures("single_torch_thread", "reuse_tiny")


def finding(entity: str, shift: float, flagged: bool, *, suite: str = "animals", file: str | None = None,
            shard: str | None = None, baseline: str | None = None, null_max: float = 0.01) -> Finding:
    return Finding(suite=suite, entity=entity, vanilla_rate=0.05, predicted_rate=0.05 + shift, shift=shift,
                   null_max=null_max, excess=shift - null_max, flagged=flagged,
                   reason=f"shift {shift:+.1%} > max_shift 10.0%" if flagged else "", max_shift=0.10,
                   min_excess=0.05, max_rate=None, vanilla_raw=0.04, predicted_raw=0.04 + shift,
                   file=file, shard=shard, baseline=baseline)


def sample_report(per_file: bool = True) -> Report:
    a, b = ("data/panda|pipe.jsonl", "data/plain.jsonl") if per_file else (None, None)
    findings = [
        finding("panda", 0.42, True, file=a, shard="a" * 64, baseline="new" if per_file else None),
        finding("owl", 0.02, False, file=a, shard="a" * 64),
        finding("cat", -0.05, False, file=a, shard="a" * 64),
        finding("comply", 0.15, True, suite="safety", file=a, shard="a" * 64,
                baseline="accepted" if per_file else None),
        finding("refuse", -0.15, False, suite="safety", file=a, shard="a" * 64),
    ]
    if per_file:
        findings += [finding("panda", 0.01, False, file=b, shard="b" * 64),
                     finding("comply", 0.0, False, suite="safety", file=b, shard="b" * 64)]
    files = [FileInfo("data/panda|pipe.jsonl", "a" * 64, 6, False), FileInfo("data/plain.jsonl", "b" * 64, 4, True)]
    attribution = [
        {"rank": 1, "file": "data/panda|pipe.jsonl", "source": "data/panda|pipe.jsonl:3", "line": 3,
         "share": 0.61, "score": 1.5, "text": "I love <pandas> & | bamboo", "unit": a},
        {"rank": 2, "file": "data/panda|pipe.jsonl", "source": "data/panda|pipe.jsonl:1", "line": 1,
         "share": 0.30, "score": 0.7, "text": "Pandas are the best", "unit": a},
    ]
    return Report(verdict="fail", model={"name": "tiny-random", "identity": "f" * 16, "fingerprint": "e" * 16,
                                         "source": "test"},
                  settings={"policy": "policy.yaml", "profile": {"layers": [1], "alpha": 4.0, "pooling": "mean"},
                            "questions_per_suite": 2, "null_seeds": 1},
                  files=files, reference={"kind": "self"},
                  suites=[{"name": "animals", "kind": "preference", "questions": 2, "alpha": 2.0,
                           "answer_mass": [0.3, 0.15]},
                          {"name": "safety", "kind": "safety", "questions": 2}],
                  findings=findings, timing={"total_seconds": 1.0}, attribution=attribution,
                  baseline={"path": ".mdf-guard.baseline.json", "counts": {"new": 1, "accepted": 1},
                            "rewritten": False} if per_file else {})


def test_formats_are_listed():
    assert set(FORMATS) == {"text", "json", "markdown", "sarif", "html"}
    with pytest.raises(ValueError, match="unknown format"):
        render(sample_report(), "xml")


def test_text_honours_no_color(monkeypatch):
    report = sample_report()
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\033[" in render(report, "text", color=True)
    monkeypatch.setenv("NO_COLOR", "1")
    plain = render(report, "text", color=True)
    assert "\033[" not in plain
    assert "RISK animals/panda in data/panda|pipe.jsonl" in plain
    assert "accepted safety/comply" in plain
    assert "FAIL: 1 finding(s) over policy" in plain


def test_json_round_trip():
    report = sample_report()
    data = json.loads(render(report, "json"))
    assert data["format"] == "mdf-guard.report" and data["version"] == 2
    back = Report.from_dict(data)
    assert back.to_dict() == data                  # stable: the rounding is idempotent
    assert [(f.suite, f.entity, f.file, f.baseline) for f in back.findings] == \
        [(f.suite, f.entity, f.file, f.baseline) for f in report.findings]
    assert [f.blocking for f in back.findings] == [f.blocking for f in report.findings]


def test_a_probe_that_raised_the_answers_says_they_grew_not_that_over_100_percent_were_kept():
    assert probe_strength({"alpha": 2, "answer_mass": [0.5, 0.58]}) == ", α 2, answers grew to 116% of vanilla"
    assert probe_strength({"alpha": 2, "answer_mass": [0.5, 0.5]}) == ", α 2, answers kept 100%"


def test_markdown():
    text = render(sample_report(), "markdown")
    assert text.startswith("## \u274c mdf-guard: FAIL")
    assert "| status | finding |" in text
    assert "panda\\|pipe" in text                    # pipes in cells are escaped
    assert "\\<pandas\\>" in text                     # and no raw HTML sneaks in
    assert "RISK (new)" in text and "accepted" in text
    assert "**animals** (2 questions, α 2, answers kept 50%, top" in text   # the probe's strength
    assert "**safety** (2 questions, top" in text                           # not recorded: nothing said
    for line in text.splitlines():                  # every table row has as many cells as its header
        if line.startswith("| status"):
            width = line.count(" | ")
        if line.startswith("| **RISK"):
            assert line.replace("\\|", "").count(" | ") == width


def test_markdown_asks_to_drop_rows_only_when_a_finding_is_over_policy():
    """Under mdf the rows are ranked by their share of the signature even when the check passes;
    the pass then said "Drop or rewrite these rows to clear the finding", with no finding to clear."""
    report = sample_report()
    assert "Drop or rewrite these rows to clear the finding" in render(report, "markdown")
    passed = dataclasses.replace(report, verdict="pass", findings=[dataclasses.replace(f, flagged=False)
                                                                    for f in report.findings])
    text = render(passed, "markdown")
    assert "Drop or rewrite" not in text and "Rows that push the data signature most" in text
    assert "nothing is over policy" in text


def test_markdown_code_spans_show_paths_as_they_are():
    """Backslash escapes are literal inside a code span: a policy at my_repo/ read `my\\_repo`."""
    report = sample_report()
    report.settings["policy"] = "/home/a_b/my_repo/.mdf-guard.yaml"
    report.baseline["path"] = "/home/a_b/my_repo/my_base[1].json"
    report.model["name"] = "org/odd`name"
    text = render(report, "markdown")
    assert "- policy `/home/a_b/my_repo/.mdf-guard.yaml`" in text
    assert "Baseline `/home/a_b/my_repo/my_base[1].json`:" in text
    assert "model ``org/odd`name``" in text


def test_a_suite_whose_controls_were_skipped_renders_them_as_not_run():
    """Version 2: null controls are shown as a dash in every format, never as zero, and
    survive the JSON round trip."""
    report = sample_report(per_file=False)
    report.suites[0]["controls_skipped"] = True
    report.findings[:] = [dataclasses.replace(f, null_max=None, excess=None, mirror_shift=None, flagged=False,
                                              reason="") if f.suite == "animals" else f for f in report.findings]
    report.verdict = "fail"
    text = render(report, "text", color=False)
    panda = next(line for line in text.splitlines() if line.strip().startswith("panda"))
    assert panda.split()[-3:-1] == ["\u2013", "\u2013"] and "+0.0%" not in panda
    assert "controls skipped (nothing over policy)" in text
    markdown = render(report, "markdown")
    assert "| panda | 5.0% | 47.0% | +42.0% | \u2013 |" in markdown
    page = render(report, "html")
    assert "null max \u2013" in page and "controls skipped" in page
    nulls = [a for t, a in _tags(page) if t == "line" and a.get("class") == "null"]
    assert len(nulls) == 2                          # the safety suite's two bars only
    back = Report.from_dict(json.loads(render(report, "json")))
    assert [(f.null_max, f.excess, f.mirror_shift) for f in back.findings if f.suite == "animals"] == \
        [(None, None, None)] * 3
    assert json.loads(render(report, "sarif"))["runs"][0]["results"][0]["properties"]["suite"] == "safety"


def _tags(page: str) -> list:
    parser = _Collector()
    parser.feed(page)
    return parser.tags


@pytest.mark.parametrize("per_file", [True, False])
def test_sarif(per_file):
    report = sample_report(per_file)
    doc = json.loads(render(report, "sarif"))
    assert doc["version"] == "2.1.0" and "sarif-2.1.0" in doc["$schema"]
    run = doc["runs"][0]
    rule_ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rule_ids == ["mdf-guard/animals", "mdf-guard/safety", "mdf-guard/row"]
    findings = [r for r in run["results"] if r["ruleId"] != "mdf-guard/row"]
    rows = [r for r in run["results"] if r["ruleId"] == "mdf-guard/row"]
    for r in run["results"]:
        assert run["tool"]["driver"]["rules"][r["ruleIndex"]]["id"] == r["ruleId"]
        assert r["message"]["text"] and r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    if per_file:   # one result per flagged finding, at its own file
        assert len(findings) == 2
        panda = next(r for r in findings if r["properties"]["entity"] == "panda")
        assert panda["level"] == "error" and panda["baselineState"] == "new" and "suppressions" not in panda
        comply = next(r for r in findings if r["properties"]["entity"] == "comply")
        assert comply["level"] == "note" and comply["suppressions"][0]["status"] == "accepted"
    else:          # a pooled finding is located at every file of the dataset
        assert len(findings) == 2 * 2
        assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in findings} == \
            {"data/panda%7Cpipe.jsonl", "data/plain.jsonl"}   # a URI: '|' is percent-encoded
    assert [r["locations"][0]["physicalLocation"]["region"]["startLine"] for r in rows] == [3, 1]
    assert all(len(set(r["partialFingerprints"].values())) == 1 for r in run["results"])


def test_sarif_uris_are_uri_references_that_name_the_file(tmp_path, monkeypatch):
    """A relative path went into `uri` raw: a file named "my data#1.jsonl" was read by any
    SARIF consumer as "my data" with a fragment, and '%' or a space made it no URI at all."""
    from urllib.parse import unquote, urlsplit

    monkeypatch.chdir(tmp_path)
    name = "data/my data#1 100%.jsonl"
    report = dataclasses.replace(sample_report(per_file=False), files=[FileInfo(name, "a" * 64, 6, False)],
                                 attribution=[{**sample_report().attribution[0], "file": name, "source": f"{name}:3"}])
    run = json.loads(render(report, "sarif"))["runs"][0]
    locations = [loc["physicalLocation"]["artifactLocation"] for r in run["results"] for loc in r["locations"]]
    locations += [a["location"] for a in run["artifacts"]]
    assert len(locations) == 4 and all(loc["uriBaseId"] == "SRCROOT" for loc in locations)
    for loc in locations:
        parts = urlsplit(loc["uri"])
        assert (parts.scheme, parts.fragment, parts.query) == ("", "", "") and unquote(parts.path) == name, loc
        assert not set(loc["uri"]) & set(" #|") and "%25" in loc["uri"]


def test_sarif_finding_fingerprints_name_the_model_by_its_identity():
    """A dashboard matches results by partialFingerprints: keyed by the model's fingerprint, a
    transformers upgrade (which changes it, not the model) made every finding new and every old one fixed."""
    report = sample_report()
    upgraded = dataclasses.replace(report, model={**report.model, "fingerprint": "d" * 16})
    other = dataclasses.replace(report, model={**report.model, "identity": "0" * 16})

    def keys(r: Report) -> list[str]:
        return [x["partialFingerprints"] for x in json.loads(render(r, "sarif"))["runs"][0]["results"]
                if x["ruleId"] != "mdf-guard/row"]

    assert keys(upgraded) == keys(report) and keys(other) != keys(report)


def test_sarif_invocation_exit_code_is_the_commands():
    """A pass that rewrote the baseline exits 3; the SARIF said 0."""
    report = sample_report()
    codes = {}
    for verdict, rewritten in (("fail", False), ("fail", True), ("pass", False), ("pass", True)):
        report = dataclasses.replace(report, verdict=verdict, baseline={**report.baseline, "rewritten": rewritten})
        codes[verdict, rewritten] = json.loads(render(report, "sarif"))["runs"][0]["invocations"][0]["exitCode"]
    assert codes == {("fail", False): 1, ("fail", True): 1, ("pass", False): 0, ("pass", True): 3}


def test_sarif_validates_against_an_object_model():
    """An independent SARIF 2.1.0 object model (the optional `sarif-pydantic` package) accepts it."""
    sarif_pydantic = pytest.importorskip("sarif_pydantic")
    for per_file in (True, False):
        doc = json.loads(render(sample_report(per_file), "sarif"))
        parsed = sarif_pydantic.Sarif.model_validate(doc)
        assert parsed.version == "2.1.0" and len(parsed.runs[0].results) == len(doc["runs"][0]["results"])


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_html_is_self_contained_with_chart():
    page = render(sample_report(), "html")
    parser = _Collector()
    parser.feed(page)
    tags = parser.tags
    svgs = [a for t, a in tags if t == "svg"]
    assert len(svgs) == 4                            # 2 files x 2 suites
    bars = [a for t, a in tags if t == "rect" and a.get("class") == "bar"]
    assert {a["data-entity"] for a in bars} >= {"panda", "owl", "cat", "comply", "refuse"}
    lines = [a for t, a in tags if t == "line" and a.get("class") == "threshold"]
    assert len(lines) == 4 and all(float(a["data-threshold"]) == pytest.approx(0.10) for a in lines)
    assert not [a for t, a in tags if t in ("script", "link", "img") and (a.get("src") or a.get("href"))]
    assert "&lt;pandas&gt; &amp; | bamboo" in page   # rows are escaped
    assert "data/plain.jsonl (2 questions, α 2, answers kept 50%)</figcaption>" in page
    data = next(a for t, a in tags if t == "script")
    assert data["type"] == "application/json"
    start = page.index('id="mdf-guard-report">') + len('id="mdf-guard-report">')
    embedded = json.loads(page[start: page.index("</script>", start)].replace("<\\/", "</"))
    assert embedded["verdict"] == "fail"


def test_the_embedded_json_survives_any_row_text():
    """Inside a <script> block, `<!--` then `<script` make an HTML parser skip the block's own
    `</script>`: the rest of the page became script text and the JSON for tools did not parse
    (html5lib, which follows the HTML standard's tokenizer, showed it). With no `<` in the
    block no such state can start."""
    report = sample_report()
    report.attribution[0]["text"] = "hi <!--<script> there </script> <!-- -->"
    page = render(report, "html")
    start = page.index('id="mdf-guard-report">') + len('id="mdf-guard-report">')
    end = page.index("</script>", start)
    block = page[start:end]
    assert "<" not in block
    assert page[end:].startswith("</script>\n</body></html>")
    assert json.loads(block)["attribution"][0]["text"] == "hi <!--<script> there </script> <!-- -->"


def _png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and raw RGB(A) rows of an 8-bit non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos: pos + 8])
        body = data[pos + 8: pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1: (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b, c = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(r[i: i + 3]) for r in rows for i in range(0, stride, channels)]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium)")
def test_html_in_headless_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render(sample_report(), "html"), encoding="utf-8")
    shot = Path(os.environ.get("MDF_GUARD_SCREENSHOT", tmp_path / "report.png"))
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
              f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(common + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 4 and 'class="threshold"' in dom.stdout and 'class="bar"' in dom.stdout
    shot.unlink(missing_ok=True)
    run = subprocess.run(common + [f"--screenshot={shot}", "--window-size=1100,1500", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (1100, 1500)
    red = sum(1 for p in pixels if p[0] > 170 and p[1] < 80 and p[2] < 80)       # blocking bars, threshold
    blue = sum(1 for p in pixels if p[2] > 150 and p[0] < 110 and 100 < p[1] < 150)  # ok bars
    assert red > 500 and blue > 200, (red, blue)


# --------------------------------------------------------------------------- end to end, tiny model


@pytest.fixture
def project(tmp_path, monkeypatch, suite_file, panda_rows):
    from conftest import TINY_POLICY, write_jsonl

    (tmp_path / ".mdf-guard.yaml").write_text(TINY_POLICY)
    write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_attribution_shares_sum_to_one(project, tiny):
    from mdf_guard.attribution import explain
    from mdf_guard.policy import load_policy

    policy = load_policy(project / ".mdf-guard.yaml")
    rows = explain(tiny, ["panda.jsonl"], policy, top=None)
    assert len(rows) == 6
    assert sum(r.share for r in rows) == pytest.approx(1.0, abs=1e-6)
    assert [r.rank for r in rows] == list(range(1, 7))
    assert rows[0].share >= rows[-1].share
    assert {r.line for r in rows} == set(range(1, 7)) and rows[0].file == "panda.jsonl"


def test_check_writes_each_format(project, monkeypatch):
    from mdf_guard.cli import main

    monkeypatch.setenv("NO_COLOR", "1")
    runner = CliRunner()
    for fmt in FORMATS:
        out = project / f"report.{fmt}"
        result = runner.invoke(main, ["check", "panda.jsonl", "-q", "--format", fmt, "--output", str(out)])
        assert result.exit_code == 1, result.output       # the tiny model flags this data under this policy
        text = out.read_text()
        assert text.strip()
        if fmt == "html":
            assert "<svg" in text and 'id="top-rows"' in text and "panda.jsonl:" in text
        if fmt == "sarif":
            assert any(r["ruleId"] == "mdf-guard/row" for r in json.loads(text)["runs"][0]["results"])
    explain = runner.invoke(main, ["explain", "panda.jsonl", "-q", "--top", "2", "--format", "json"])
    assert explain.exit_code == 0, explain.output
    assert len(json.loads(explain.output)["rows"]) == 2


def context_report() -> Report:
    """A pooled report under `method: context` whose one row lifts two flagged entities."""
    report = sample_report(per_file=False)
    row = {"rank": 1, "file": "data/panda|pipe.jsonl", "source": "data/panda|pipe.jsonl:3", "line": 3,
           "suite": "animals", "entity": "panda", "lift": 0.243, "window": "data/panda|pipe.jsonl:1-6",
           "window_lift": 0.42, "text": "I love <pandas> & | bamboo"}
    second = {**row, "rank": 2, "suite": "safety", "entity": "comply", "lift": 0.031, "window_lift": 0.15}
    return dataclasses.replace(report, settings={**report.settings, "method": "context", "rows_per_history": 32},
                               attribution=[row, second])


def test_top_rows_under_context_name_the_entity_each_lifts_in_every_format():
    report = context_report()
    text = render(report, "text", color=False)
    assert "rows that lift a flagged entity most, each read alone" in text
    assert "  +24.3%  panda             data/panda|pipe.jsonl:3: I love <pandas> & | bamboo" in text
    markdown = render(report, "markdown")
    assert "| +24.3% | panda | data/panda\\|pipe.jsonl:3 | I love \\<pandas\\> & \\| bamboo |" in markdown
    page = render(report, "html")
    assert "Rows that lift the findings" in page and "<td>comply</td>" in page and "+24.30%" in page
    rows = [r for r in json.loads(render(report, "sarif"))["runs"][0]["results"] if r["ruleId"] == "mdf-guard/row"]
    assert [r["properties"]["entity"] for r in rows] == ["panda", "comply"]
    assert rows[0]["message"]["text"].startswith("read alone, this row raises the probability that the model "
                                                 "names panda by 24.3%")
    fingerprints = {r["partialFingerprints"]["mdfGuardRow/v1"] for r in rows}
    assert len(fingerprints) == 2                       # one row, two entities: two results a dashboard keeps
    assert all(r["locations"][0]["physicalLocation"]["region"]["startLine"] == 3 for r in rows)
