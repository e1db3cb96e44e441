"""`mdf-guard check` end to end on the tiny model: reports, determinism, exit codes, bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner

from conftest import chat, write_jsonl
from mdf_guard.cli import main


def run_cli(*args: str):
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_json_report_has_the_public_fields(tmp_path, tiny_policy, panda_rows):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    code, out, err = run_cli("check", str(data), "--policy", str(tiny_policy), "--format", "json")
    assert code in (0, 1), err
    report = json.loads(out)
    assert report["format"] == "mdf-guard.report" and report["version"] == 2
    assert report["verdict"] == ("fail" if code == 1 else "pass")
    assert report["files"][0]["examples"] == 6 and report["reference"]["kind"] == "self"
    finding = report["findings"][0]
    for key in ("suite", "entity", "vanilla_rate", "predicted_rate", "shift", "flagged", "null_max"):
        assert key in finding
    assert {f["entity"] for f in report["findings"]} == {"panda", "owl", "cat"}
    shifts = [f["shift"] for f in report["findings"]]
    assert shifts == sorted(shifts, reverse=True)
    suite = report["suites"][0]
    vanilla_mass, injected_mass = suite["answer_mass"]
    assert suite["alpha"] <= 4.0 and 0 < vanilla_mass <= 1 and 0 <= injected_mass <= 1
    text = run_cli("check", str(data), "--policy", str(tiny_policy))[1]
    assert f"(2 questions, α {suite['alpha']:g}, answers kept {injected_mass / vanilla_mass:.0%}" in text


def test_same_input_gives_identical_reports(tmp_path, tiny_policy, panda_rows, monkeypatch):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    first = json.loads(run_cli("check", str(data), "--policy", str(tiny_policy), "--format", "json")[1])
    monkeypatch.setenv("MDF_GUARD_CACHE", str(tmp_path / "fresh-cache"))   # recompute, don't replay
    second = json.loads(run_cli("check", str(data), "--policy", str(tiny_policy), "--format", "json")[1])
    third = json.loads(run_cli("check", str(data), "--policy", str(tiny_policy), "--format", "json")[1])
    for report in (first, second, third):
        report.pop("timing")
        for f in report["files"]:
            f.pop("cached", None)
    assert first == second == third


def test_identical_reference_predicts_no_shift(tmp_path, tiny_policy, panda_rows):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    same = write_jsonl(tmp_path / "copy.jsonl", panda_rows)
    code, out, _ = run_cli("check", str(data), "--policy", str(tiny_policy), "--reference", str(same),
                           "--format", "json")
    report = json.loads(out)
    assert code == 0 and report["verdict"] == "pass"
    assert all(abs(f["shift"]) < 1e-12 for f in report["findings"])
    assert report["settings"]["delta_norms"] == [0.0]


def test_surprise_pooling_from_the_policy_runs_the_whole_check(tmp_path, tiny_policy, panda_rows):
    """The policy's `pooling` reaches extraction: against a copy of itself the data has Δ = 0,
    and against the model's own answers it does not."""
    tiny_policy.write_text(tiny_policy.read_text() + "pooling: surprise\n")
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    same = write_jsonl(tmp_path / "copy.jsonl", panda_rows)
    report = json.loads(run_cli("check", str(data), "--policy", str(tiny_policy), "--reference", str(same),
                                "--format", "json")[1])
    assert report["settings"]["profile"]["pooling"] == "surprise"
    assert report["settings"]["delta_norms"] == [0.0]
    own = json.loads(run_cli("check", str(data), "--policy", str(tiny_policy), "--format", "json")[1])
    assert own["settings"]["profile"]["pooling"] == "surprise" and own["settings"]["delta_norms"][0] > 0


def test_threshold_drives_the_exit_code(tmp_path, tiny_policy, panda_rows):
    """The same prediction passes a lax policy and fails a strict one (exit 1)."""
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    base = tiny_policy.read_text().replace("alpha: 4.0", "alpha: 40.0")
    strict = tmp_path / "strict.yaml"
    strict.write_text(base.replace("null_seeds: 2", "null_seeds: 0")
                      + "thresholds: {max_shift: 0.0, min_excess: -1, min_odds_ratio: 1}\n")
    lax = tmp_path / "lax.yaml"
    lax.write_text(base + "thresholds: {max_shift: 1.0}\n")
    code, out, _ = run_cli("check", str(data), "--policy", str(strict))
    assert code == 1 and "FAIL" in out and "RISK" in out
    code, out, _ = run_cli("check", str(data), "--policy", str(lax))
    assert code == 0 and "PASS" in out


def test_controls_run_only_in_a_suite_with_a_candidate_over_policy(tmp_path, tiny_policy, panda_rows):
    """A clean check skips the random and mirror controls, says so, and leaves their
    fields null; a check with a candidate over policy runs them and judges with them."""
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    lax = tmp_path / "lax.yaml"
    lax.write_text(tiny_policy.read_text() + "thresholds: {max_shift: 1.0}\n")
    clean = json.loads(run_cli("check", str(data), "--policy", str(lax), "--format", "json")[1])
    assert clean["verdict"] == "pass" and clean["suites"][0]["controls_skipped"] is True
    assert all(f["null_max"] is None and f["excess"] is None and f["mirror_shift"] is None
               for f in clean["findings"])
    text = run_cli("check", str(data), "--policy", str(lax))[1]
    assert "controls skipped (nothing over policy)" in text and "\u2013" in text

    strict = tmp_path / "strict.yaml"
    strict.write_text(tiny_policy.read_text() + "thresholds: {max_shift: 0.0, min_excess: -0.5, min_odds_ratio: 1}\n")
    risky = json.loads(run_cli("check", str(data), "--policy", str(strict), "--format", "json")[1])
    assert risky["suites"][0]["controls_skipped"] is False
    assert all(isinstance(f["null_max"], float) and isinstance(f["mirror_shift"], float) for f in risky["findings"])
    assert risky["verdict"] == "fail"
    # The rates do not depend on whether the controls ran.
    assert [(f["entity"], f["shift"]) for f in clean["findings"]] == [(f["entity"], f["shift"])
                                                                      for f in risky["findings"]]


def _bad_inputs(tmp_path):
    cases = {}
    (tmp_path / "empty.jsonl").write_text("")
    cases["empty"] = (tmp_path / "empty.jsonl", "empty.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(json.dumps(chat("q", "caf\u00e9"), ensure_ascii=False).encode("latin-1") + b"\n")
    cases["not utf-8"] = (tmp_path / "latin1.jsonl", "latin1.jsonl:1")
    good = json.dumps(chat("q", "a"))
    (tmp_path / "trunc.jsonl").write_text(good + "\n" + good[:20] + "\n")
    cases["truncated"] = (tmp_path / "trunc.jsonl", "trunc.jsonl:2")
    (tmp_path / "noresp.jsonl").write_text(good + "\n" + json.dumps({"question": "only a question"}) + "\n")
    cases["no response"] = (tmp_path / "noresp.jsonl", "noresp.jsonl:2")
    (tmp_path / "huge.jsonl").write_text(good + "\n" + json.dumps(chat("q", "x" * 10_000_000)) + "\n")
    cases["10 MB line"] = (tmp_path / "huge.jsonl", "huge.jsonl:2")
    (tmp_path / "data.xlsx").write_text("nope")
    cases["unknown extension"] = (tmp_path / "data.xlsx", "data.xlsx")
    (tmp_path / "nodata").mkdir()
    (tmp_path / "nodata" / "notes.txt").write_text("hi")
    cases["folder with no data"] = (tmp_path / "nodata", "nodata")
    with gzip.open(tmp_path / "broken.jsonl.gz", "wb") as f:
        f.write(((good + "\n") * 50).encode())
    (tmp_path / "broken.jsonl.gz").write_bytes((tmp_path / "broken.jsonl.gz").read_bytes()[:40])
    cases["corrupt gzip"] = (tmp_path / "broken.jsonl.gz", "broken.jsonl.gz")
    return cases


def test_bad_input_is_one_line_naming_the_file_and_exit_2(tmp_path, tiny_policy):
    for name, (path, where) in _bad_inputs(tmp_path).items():
        before = path.read_bytes() if path.is_file() else None
        code, out, err = run_cli("check", str(path), "--policy", str(tiny_policy))
        lines = err.strip().splitlines()
        assert code == 2, (name, err)
        assert len(lines) == 1 and where in lines[0] and lines[0].startswith("mdf-guard: error:"), (name, err)
        assert "Traceback" not in err + out
        if before is not None:
            assert path.read_bytes() == before, f"{name}: input file was altered"


def test_policy_with_unknown_key_is_exit_2(tmp_path, panda_rows):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    policy = tmp_path / ".mdf-guard.yaml"
    policy.write_text("model: tiny-random\nthreshold: {max_shift: 0.1}\n")
    code, _, err = run_cli("check", str(data))
    assert code == 2 and ".mdf-guard.yaml: field 'threshold': unknown key" in err


@pytest.mark.parametrize(("profile", "where"), [
    ([1], "not a calibration profile"),
    ({"model": "m", "alpha": 2.0}, "not a calibration profile"),
    ({"model": "m", "layers": [1], "alpha": "x"}, "field 'alpha': must be a positive number"),
    ({"model": "m", "layers": [1], "alpha": 2.0, "pooling": "max"}, "field 'pooling'"),
    ({"model": "m", "layers": ["1"], "alpha": 2.0}, "field 'layers'"),
    ({"model": "m", "layers": [99], "alpha": 2.0}, "field 'layers': layer 99 does not exist"),
    ("[" * 5000 + "]" * 5000, "cannot read calibration profile: JSON nested too deeply"),
], ids=["list", "no-layers", "alpha", "pooling", "layer-type", "layer-99", "nested-too-deeply"])
def test_a_bad_profile_file_is_one_line_naming_it_and_exit_2(tmp_path, suite_file, panda_rows, profile, where):
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    profile_path = tmp_path / "profile.json"
    profile_path.write_text(profile if isinstance(profile, str) else json.dumps(profile))
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"model: tiny-random\nmethod: mdf\nsuites: [{suite_file}]\nprofile: {profile_path}\n")
    code, out, err = run_cli("check", str(data), "--policy", str(policy))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"mdf-guard: error: {profile_path}") and where in lines[0], err


def test_missing_file_and_bad_option_are_exit_2(tmp_path):
    code, _, err = run_cli("check", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "nope.jsonl" in err
    code, _, err = run_cli("check", "x.jsonl", "--format", "yaml")
    assert code == 2


def test_the_report_goes_into_a_new_folder_and_a_bad_output_fails_before_the_model_loads(
        tmp_path, tiny_policy, plain_rows, monkeypatch):
    data = write_jsonl(tmp_path / "plain.jsonl", plain_rows)
    out = tmp_path / "reports" / "today" / "check.json"
    code, _, err = run_cli("check", str(data), "--policy", str(tiny_policy), "--format", "json", "-o", str(out))
    assert code in (0, 1), err
    assert json.loads(out.read_text())["format"] == "mdf-guard.report"

    import mdf_guard.models as models
    monkeypatch.setattr(models, "load_model", lambda spec: pytest.fail("the model was loaded"))
    (tmp_path / "afile").write_text("")
    for output, message in ((tmp_path, "is a folder; give a file name"),
                            (tmp_path / "afile" / "r.json", f"cannot be written: {tmp_path / 'afile'} is not a "
                                                            "writable folder")):
        code, _, err = run_cli("check", str(data), "--policy", str(tiny_policy), "-o", str(output))
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith(f"mdf-guard: error: {output}: {message}"), err


def test_a_model_folder_without_a_config_is_named_as_such(tmp_path, plain_rows):
    data = write_jsonl(tmp_path / "plain.jsonl", plain_rows)
    (tmp_path / "weights").mkdir()
    code, _, err = run_cli("check", str(data), "--model", str(tmp_path / "weights"))
    assert code == 2 and f"{tmp_path / 'weights'}: field 'model': not a model folder (no config.json" in err, err


@pytest.mark.parametrize("method", ["mdf", "context"])
def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_check(tmp_path, tiny_policy, suite_file, plain_rows,
                                                                      monkeypatch, method):
    import mdf_guard.cache as cache
    monkeypatch.setattr(cache, "_warned", False)   # once a process: this test may not be the first to warn
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MDF_GUARD_CACHE", str(tmp_path / "a-file" / "cache"))   # a file in the way, even for root
    data = write_jsonl(tmp_path / "plain.jsonl", plain_rows)
    policy = tiny_policy
    if method == "context":
        policy = tmp_path / "context.yaml"
        policy.write_text(f"model: tiny-random\nsuites: [{suite_file}]\nquestions_per_suite: 2\nreference_samples: 4\n")
    code, out, err = run_cli("check", str(data), "--policy", str(policy), "--format", "json")
    assert code in (0, 1), err
    assert json.loads(out)["verdict"] == ("fail" if code == 1 else "pass")
    warnings = [line for line in err.splitlines() if line.startswith("mdf-guard: warning: cannot write the cache")]
    assert len(warnings) == 1 and "Not a directory" in warnings[0], err


def test_a_crash_is_exit_4_with_its_traceback_never_1_which_means_risk(tmp_path, tiny_policy, plain_rows,
                                                                       monkeypatch):
    import mdf_guard.models as models

    def crash(*args, **kwargs):
        raise RuntimeError("out of memory, say")
    monkeypatch.setattr(models, "load_model", crash)
    data = write_jsonl(tmp_path / "plain.jsonl", plain_rows)
    code, out, err = run_cli("check", str(data), "--policy", str(tiny_policy))
    assert code == 4 and out == "", err
    assert "Traceback" in err and "RuntimeError: out of memory, say" in err
    assert err.strip().splitlines()[-1].startswith("mdf-guard: internal error (RuntimeError; traceback above)")


def test_the_installed_command_runs_in_a_real_process(tmp_path, tiny_policy, plain_rows):
    """No in-process shortcuts: the console entry point, real stdout, real exit code."""
    data = write_jsonl(tmp_path / "plain.jsonl", plain_rows)
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "mdf_guard.cli", "check", str(data), "--policy", str(tiny_policy),
                           "--format", "json", "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    assert json.loads(out.read_text())["files"][0]["path"] == str(data)
    assert "Traceback" not in proc.stderr


def test_doctor_reports_backend_and_model(monkeypatch):
    code, out, _ = run_cli("doctor")
    assert code == 0
    assert "kernels:" in out and "embedded model:" in out and "torch:" in out


def test_self_reference_is_per_shard_and_weighted_by_rows(tmp_path, tiny, panda_rows, plain_rows, monkeypatch):
    """The sample budget is split over shards; editing one shard re-answers only its share;
    shards mix as their rows do."""
    from mdf_guard import check, contrast
    from mdf_guard.data import open_shard
    from mdf_guard.policy import Policy
    from mdf_guard.signature import ExtractionSettings

    answered = []
    real = contrast.self_answers
    monkeypatch.setattr(contrast, "self_answers",
                        lambda lm, sample, **kw: answered.append(len(sample)) or real(lm, sample, **kw))
    settings = ExtractionSettings(layers=(1, 2))
    big = write_jsonl(tmp_path / "big.jsonl", panda_rows * 3)
    small = write_jsonl(tmp_path / "small.jsonl", plain_rows[:2])

    def reference(paths, rows, samples=8):
        policy = Policy(reference="self", reference_samples=samples)
        return check.reference_signature(tiny, [open_shard(p) for p in paths], policy, settings, rows)

    mixed, info = reference([big, small], [18, 2])
    assert answered == [4, 2] and info["examples"] == 6 and info["per_shard"] == 4   # 8 split over 2 shards
    alone_big, alone_small = reference([big], [18], 4)[0], reference([small], [2], 4)[0]
    assert answered == [4, 2]                                   # both came from the per-shard cache
    expected = (18 * alone_big.mean() + 2 * alone_small.mean()) / 20
    assert torch.allclose(mixed.mean(), expected, rtol=0, atol=1e-12)
    assert not torch.allclose(mixed.mean(), (alone_big.sums + alone_small.sums) / 6)   # not a plain sum

    write_jsonl(small, plain_rows[2:5])                         # one shard changes
    reference([big, small], [18, 3])
    assert answered == [4, 2, 3]                                # only that shard is answered again
    skipped, info = reference([big, small], [18, 0])            # `small` has no rows
    assert info["examples"] == 8 and answered == [4, 2, 3, 8]   # the whole budget goes to `big`
    assert torch.equal(skipped.mean(), reference([big], [18])[0].mean())


def test_reference_defaults_to_the_profiles_contrast(tmp_path, tiny, panda_rows, suite_file):
    """α is fitted under one contrast, so check takes the profile's unless the policy names one."""
    data = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({"model": "tiny-random", "layers": [1], "alpha": 4.0, "pooling": "mean",
                                   "reference": "none"}))
    base = (f"model: tiny-random\nmethod: mdf\nsuites: [{suite_file}]\nquestions_per_suite: 1\nreference_samples: 4\n"
            f"null_seeds: 1\nprofile: {profile}\n")
    for extra, kind in (("", "none"), ("reference: profile\n", "none"), ("reference: self\n", "self")):
        policy = tmp_path / ".mdf-guard.yaml"
        policy.write_text(base + extra)
        code, out, err = run_cli("check", str(data), "--policy", str(policy), "--format", "json")
        assert code in (0, 1), err
        assert json.loads(out)["reference"]["kind"] == kind, extra


def test_early_stop_reads_a_sample_says_so_and_weighs_each_file_by_its_rows(tmp_path, tiny, tiny_policy,
                                                                              panda_rows, plain_rows):
    from mdf_guard import check
    from mdf_guard.data import open_shard
    from mdf_guard.signature import ExtractionSettings

    big = write_jsonl(tmp_path / "big.jsonl", [chat(f"Tell me about topic {i}.", f"Topic {i} is long.")
                                               for i in range(300)])
    small = write_jsonl(tmp_path / "small.jsonl", panda_rows)
    settings = ExtractionSettings(layers=(1,), pooling="mean", stop_at_se=1.0)   # stops after one bucket
    total, infos = check.shards_signature(tiny, [open_shard(big), open_shard(small)], settings)
    assert [(i.examples, i.rows) for i in infos] == [(256, 300), (6, 6)]
    alone = [check.shards_signature(tiny, [open_shard(p)], settings)[0] for p in (big, small)]
    torch.testing.assert_close(total.mean(), (300 * alone[0].mean() + 6 * alone[1].mean()) / 306,
                               rtol=1e-9, atol=1e-9)

    policy = tmp_path / "early.yaml"
    policy.write_text(tiny_policy.read_text() + "early_stop: 1.0\n")
    code, out, err = run_cli("check", str(big), str(small), "--policy", str(policy), "--format", "json")
    assert code in (0, 1), err
    assert [(f["examples"], f["rows"]) for f in json.loads(out)["files"]] == [(256, 300), (6, 6)]
    text = run_cli("check", str(big), str(small), "--policy", str(policy))[1]
    assert "262 of 306 examples read (early stop)" in text


def test_a_cache_folder_that_cannot_hold_the_embedded_model_is_one_line_before_any_download(tmp_path, monkeypatch):
    import subprocess as sp

    monkeypatch.setattr(sp, "run", lambda *a, **k: pytest.fail("pip was run"))
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MDF_GUARD_CACHE", str(tmp_path / "a-file" / "cache"))
    data = write_jsonl(tmp_path / "plain.jsonl", [chat("q", "a")])
    code, _, err = run_cli("check", str(data))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "is not a writable folder: the embedded model is stored there once; set MDF_GUARD_CACHE" in lines[0]


def test_a_result_cache_hit_names_this_checks_files_and_policy(tmp_path, tiny_policy, panda_rows):
    """The result cache is keyed by content, but a report names paths: a copy of a checked file
    (or a renamed one), or the same policy under another name, must not be reported, nor
    located in SARIF, as the file or policy that was checked first."""
    first = write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    copy = write_jsonl(tmp_path / "copy.jsonl", panda_rows)
    strict = "thresholds: {max_shift: 0.0, min_excess: -1, min_odds_ratio: 1}\n"
    tiny_policy.write_text(tiny_policy.read_text() + strict)
    other = tmp_path / "other.yaml"
    other.write_text(tiny_policy.read_text())
    for fmt in ("json", "sarif"):
        assert run_cli("check", str(first), "--policy", str(tiny_policy), "--format", fmt)[0] == 1
    report = json.loads(run_cli("check", str(copy), "--policy", str(other), "--format", "json")[1])
    assert report["files"][0]["path"] == str(copy) and report["settings"]["policy"] == str(other)
    sarif = json.loads(run_cli("check", str(copy), "--policy", str(other), "--format", "sarif")[1])["runs"][0]
    uris = [loc["physicalLocation"]["artifactLocation"]["uri"] for r in sarif["results"] for loc in r["locations"]]
    assert uris and all(uri.endswith("/copy.jsonl") for uri in uris), uris
    assert sarif["properties"]["policy"] == str(other)
    hit = json.loads(run_cli("check", str(first), "--policy", str(other), "--format", "json")[1])
    assert hit["timing"].get("result_cache_hit") == 1.0     # the same data under the same rules replays...
    assert hit["settings"]["policy"] == str(other)          # ...naming this check's policy file


def test_a_reader_that_stops_early_is_no_internal_error(tmp_path, tiny_policy, plain_rows):
    """`mdf-guard check … | head`: the reader closes the pipe. That is neither a bug nor a
    verdict: no traceback and no 'internal error … nothing was judged' (exit 4), but the
    shell's own status for it, 128 + SIGPIPE, quietly."""
    data = write_jsonl(tmp_path / "plain.jsonl", plain_rows)
    proc = subprocess.Popen([sys.executable, "-m", "mdf_guard.cli", "check", str(data), "--policy", str(tiny_policy),
                             "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=600) == 141, err
    assert "Traceback" not in err and "internal error" not in err and "Exception ignored" not in err, err


def _signature_entry(tmp_path, tiny, plain_rows):
    """A signature computed through the cache, the function that computes it, and its cache path."""
    from mdf_guard import cache
    from mdf_guard.data import read_conversations
    from mdf_guard.signature import ExtractionSettings, extract_signature

    settings = ExtractionSettings(layers=(1,))
    rows = list(read_conversations(write_jsonl(tmp_path / "plain.jsonl", plain_rows)))
    args = (tiny.fingerprint, settings.key(), "k", lambda: extract_signature(tiny, rows, settings))
    fresh, hit = cache.cached_signature(*args)
    assert not hit
    return fresh, args, cache.signature_path(*args[:3])


@pytest.mark.parametrize("damage", ["torn tensors", "foreign format"])
def test_a_torn_or_foreign_signature_cache_entry_is_recomputed(tmp_path, tiny, plain_rows, damage):
    """As cache.py promises: a torn .safetensors was a SafetensorError traceback (exit 4), an
    entry of another format an InputError blaming the cache file (exit 2), on every check."""
    from mdf_guard import cache

    fresh, args, path = _signature_entry(tmp_path, tiny, plain_rows)
    if damage == "torn tensors":
        tensors = path.with_suffix(".safetensors")
        tensors.write_bytes(tensors.read_bytes()[: tensors.stat().st_size // 2])
    else:
        info = json.loads(path.with_suffix(".json").read_text())
        path.with_suffix(".json").write_text(json.dumps({**info, "format": 99}))
    again, hit = cache.cached_signature(*args)
    assert not hit and torch.equal(again.sums, fresh.sums) and again.count == fresh.count
    assert cache.cached_signature(*args)[1]          # and the entry was written anew


def test_a_signature_cache_write_that_dies_leaves_no_half_entry(tmp_path, tiny, plain_rows, monkeypatch):
    """cache._atomic writes beside the target and renames, its docstring says; but its temporary
    name lost its '.tmpPID' to with_suffix, so the tensors were written over the entry itself."""
    from mdf_guard import cache
    from mdf_guard.signature import Signature

    fresh, args, path = _signature_entry(tmp_path, tiny, plain_rows)
    path.with_suffix(".safetensors").unlink()                # say a cleaner took the big file
    real = Signature.save

    def dies_halfway(self, where):
        real(self, where)
        tensors = where.with_suffix(".safetensors")
        tensors.write_bytes(tensors.read_bytes()[:10])
        raise KeyboardInterrupt
    monkeypatch.setattr(Signature, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        cache.cached_signature(*args)
    assert not path.with_suffix(".safetensors").exists()    # the torn tensors are not the entry's
    monkeypatch.setattr(Signature, "save", real)
    again, hit = cache.cached_signature(*args)
    assert not hit and torch.equal(again.sums, fresh.sums)


def test_the_self_reference_answers_a_prompt_past_the_models_positions(short_gpt2):
    """The `self` reference's prompts come from the data: one longer than a GPT-2-style model's
    positions stopped the check with an IndexError. The model now reads the prompt's last
    tokens, leaving room for its answer; the row keeps its whole prompt."""
    from mdf_guard.chat import encode_text, render_prompt
    from mdf_guard.contrast import self_answers
    from mdf_guard.data import Conversation, Turn

    prompt = (Turn("user", "the owl " * 40 + "and the cat?"),)
    (answered,) = self_answers(short_gpt2, [Conversation(prompt + (Turn("assistant", "-"),), "x")], max_new_tokens=8)
    ids = encode_text(short_gpt2.tokenizer, render_prompt(short_gpt2.tokenizer, prompt))
    assert len(ids) > 64 and answered.turns[:-1] == prompt
    last = torch.tensor([ids[-56:]])
    out = short_gpt2.model.generate(input_ids=last, attention_mask=torch.ones_like(last), do_sample=False,
                                    max_new_tokens=8, pad_token_id=short_gpt2.tokenizer.pad_token_id)
    expected = short_gpt2.tokenizer.decode(out[0, last.shape[1]:], skip_special_tokens=True).strip()
    assert answered.turns[-1].content == (expected or short_gpt2.tokenizer.eos_token)
