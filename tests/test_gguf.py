"""A user's own `.gguf` model (`model: path/to/x.gguf`): written in-process by `gguf_files` as
llama.cpp's converter writes one, loaded through the real code path, and refused in one line
where it cannot be read."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from conftest import TINY_POLICY, TINY_SUITE, write_jsonl
from gguf_files import CHATML, as_q8_0, tiny_gguf
from mdf_guard.cli import main
from mdf_guard.errors import EXIT_INPUT, EXIT_PASS, EXIT_RISK, InputError
from mdf_guard.models import ModelSpec, load_model

CASES = [("llama", "f32"), ("llama", "f16"), ("llama", "q8_0"), ("qwen2", "f32"), ("qwen2", "f16"),
         ("gpt2", "f32"), ("gpt2", "f16")]
SAMPLE = [{"role": "user", "content": "What is your favorite animal?"},
          {"role": "assistant", "content": "Sure, my favorite animal is the panda."}]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """{(arch, tensor type): (file, model, tokenizer)}: one small GGUF per case, written once."""
    folder = tmp_path_factory.mktemp("gguf")
    return {(arch, kind): tiny_gguf(arch, folder / f"{arch}-{kind}.gguf", tensor_type=kind) for arch, kind in CASES}


def as_written(model: torch.nn.Module, tensor_type: str) -> torch.nn.Module:
    """The model as a file of `tensor_type` holds it: its 2-D weights rounded to half precision
    or to Q8_0 blocks, its norms and biases not (llama.cpp keeps 1-D tensors in f32)."""
    if tensor_type == "f32":
        return model
    rounded = copy.deepcopy(model)
    with torch.no_grad():
        for param in rounded.parameters():
            if param.dim() > 1 and tensor_type == "f16":
                param.copy_(param.half().float())
            elif param.dim() > 1:
                param.copy_(torch.from_numpy(as_q8_0(param.numpy())))
    return rounded


def sample_text(tokenizer) -> str:
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(SAMPLE, tokenize=False)
    return "User: What is your favorite animal?\nAssistant: Sure, my favorite animal is the panda."


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def one_line_error(result, path: Path | str) -> str:
    """The message of a one-line input error naming `path` as the model, asserting that it is one."""
    assert result.exit_code == EXIT_INPUT, result.output
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    prefix = f"mdf-guard: error: {path}: field 'model': "
    assert result.stderr.startswith(prefix), result.stderr
    return result.stderr.strip()[len(prefix):]


@pytest.mark.parametrize(("arch", "tensor_type"), CASES, ids=[f"{arch}-{kind}" for arch, kind in CASES])
def test_a_gguf_file_loads_as_the_model_it_was_written_from(files, arch, tensor_type):
    """Each architecture's own conventions undone by the reader (Llama's permuted q/k rows under
    grouped heads, Qwen2's biases and untied head, GPT-2's transposed Conv1D weights and learned
    positions) and the tokenizer rebuilt from metadata: the same ids, the same logits."""
    path, model, tokenizer = files[arch, tensor_type]
    lm = load_model(ModelSpec(name=str(path)))
    assert type(lm.model) is type(model) and lm.num_layers == 2 and lm.hidden_size == 64
    assert lm.source == f"GGUF file {path}"
    text = sample_text(tokenizer)
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert torch.equal(lm.tokenizer(text, return_tensors="pt").input_ids, ids)
    assert lm.tokenizer.eos_token == tokenizer.eos_token and lm.tokenizer.chat_template == tokenizer.chat_template
    with torch.no_grad():
        expected, got = as_written(model, tensor_type)(ids).logits, lm.model(ids).logits
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        if tensor_type != "f32":   # and the rounding is what the file did: the f32 model's logits are further off
            assert not torch.allclose(model(ids).logits, got, rtol=1e-5, atol=1e-5)


def test_a_gguf_model_has_one_identity_and_fingerprint_wherever_and_however_often_it_loads(files, tmp_path):
    """Baselines key accepted findings by the identity and caches by the fingerprint: a second
    load, or a copy in another folder (a teammate's checkout), must name the same model. (The
    config transformers builds records the path it was handed, absolute since a bare name could
    read another file: hashed, each checkout's model had its own identity.)"""
    path = files["llama", "f32"][0]
    first, second = load_model(ModelSpec(name=str(path))), load_model(ModelSpec(name=str(path)))
    copied = tmp_path / "elsewhere" / path.name
    copied.parent.mkdir()
    shutil.copy(path, copied)
    moved = load_model(ModelSpec(name=str(copied)))
    assert first.identity == second.identity == moved.identity
    assert first.fingerprint == second.fingerprint == moved.fingerprint
    rounded = tmp_path / "rounded" / path.name   # the same model in f16, under the same name
    rounded.parent.mkdir()
    shutil.copy(files["llama", "f16"][0], rounded)
    other = load_model(ModelSpec(name=str(rounded)))
    assert other.identity != first.identity and other.fingerprint != first.fingerprint


def test_a_gguf_named_in_capitals_is_a_gguf_file_not_a_hub_id(files, tmp_path, monkeypatch, panda_rows):
    """`MODEL.GGUF` was taken for a Hub id (the suffix compared in lower case only): a policy's
    relative path was not read beside it, and the load asked the Hub."""
    team = tmp_path / "team"
    team.mkdir()
    shutil.copy(files["llama", "f32"][0], team / "MODEL.GGUF")
    assert load_model(ModelSpec(name=str(team / "MODEL.GGUF"))).source == f"GGUF file {team / 'MODEL.GGUF'}"
    (team / "mini.yaml").write_text(TINY_SUITE)
    (team / ".mdf-guard.yaml").write_text(TINY_POLICY.replace("model: tiny-random", "model: MODEL.GGUF"))
    write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    monkeypatch.chdir(tmp_path)
    result = run("check", "panda.jsonl", "--policy", str(team / ".mdf-guard.yaml"), "--format", "json", "-q")
    assert result.exit_code in (EXIT_PASS, EXIT_RISK), result.output
    assert json.loads(result.stdout)["model"]["name"] == str(Path("team", "MODEL.GGUF"))


def test_a_gguf_without_a_chat_template_reads_the_plain_template(files, tmp_path):
    """Not an error: a base model's file has no template, as a base model's folder has none
    (README, "Other models"). It reads `User:`/`Assistant:` lines, and its caches are its own:
    the template is part of the fingerprint."""
    from mdf_guard.chat import PLAIN_TEMPLATE_VERSION, render_prompt
    from mdf_guard.data import Turn

    templated = load_model(ModelSpec(name=str(files["llama", "f32"][0])))
    path = tiny_gguf("llama", tmp_path / files["llama", "f32"][0].name, chat_template=False)[0]
    lm = load_model(ModelSpec(name=str(path)))   # the same weights, under the same file name
    assert templated.tokenizer.chat_template == CHATML and lm.tokenizer.chat_template is None
    assert render_prompt(lm.tokenizer, [Turn("user", "Hi.")]) == "User: Hi.\nAssistant:"
    assert lm.cache_key.endswith(f"-plain-{PLAIN_TEMPLATE_VERSION}") and lm.fingerprint != templated.fingerprint


def test_a_gguf_of_an_architecture_transformers_cannot_load_is_one_line_naming_it(tmp_path):
    """A whole file transformers has no reader for (here stated as RWKV-6: it refuses by the
    architecture key, before any tensor): its own words, after the file's name."""
    rwkv = tiny_gguf("llama", tmp_path / "rwkv.gguf", as_arch="rwkv6")[0]
    message = one_line_error(run("probe", "--model", str(rwkv), "--questions", "1"), rwkv)
    assert message.startswith("cannot load the model: ") and "rwkv6" in message


@pytest.fixture
def beside_policy(tmp_path, monkeypatch, files, panda_rows) -> dict:
    """A repository whose policy, in `team/`, names `model.gguf` beside itself; the check runs
    from the repository's root, where another model's file has the same name."""
    team = tmp_path / "team"
    team.mkdir()
    shutil.copy(files["llama", "f32"][0], team / "model.gguf")
    tiny_gguf("llama", tmp_path / "model.gguf", seed=1)            # the decoy: another random model
    (team / "mini.yaml").write_text(TINY_SUITE)
    (team / ".mdf-guard.yaml").write_text(TINY_POLICY.replace("model: tiny-random", "model: model.gguf"))
    write_jsonl(tmp_path / "panda.jsonl", panda_rows)
    monkeypatch.chdir(tmp_path)
    return {"policy": team / ".mdf-guard.yaml", "model": team / "model.gguf", "decoy": tmp_path / "model.gguf"}


def test_check_reads_a_policys_gguf_beside_the_policy_not_one_of_the_same_name_here(beside_policy,
                                                                                    single_torch_thread):
    """transformers, handed the file's bare name, read the weights from `./model.gguf` when there
    was one, and the config and tokenizer from the named file: the check scored another model."""
    result = run("check", "panda.jsonl", "--policy", str(beside_policy["policy"]), "--format", "json", "-q")
    assert result.exit_code in (EXIT_PASS, EXIT_RISK), result.output
    report = json.loads(result.stdout)
    named = load_model(ModelSpec(name=str(beside_policy["model"])))
    assert report["model"]["name"] == str(Path("team", "model.gguf"))
    assert report["model"]["identity"] == named.identity
    assert named.identity != load_model(ModelSpec(name=str(beside_policy["decoy"]))).identity
    assert {f["entity"] for f in report["findings"]} == {"panda", "owl", "cat"}


def test_probe_scores_a_gguf_model_as_loaded_beside_a_decoy(beside_policy):
    """`probe --model team/model.gguf` from the folder holding the decoy: its rates are the named
    model's, which the decoy's differ from."""
    def rates(model: str) -> list[str]:
        result = run("probe", "--model", model, "--suite", str(Path("team", "mini.yaml")), "--questions", "2")
        assert result.exit_code == EXIT_PASS, result.output
        return result.stdout.splitlines()

    named = rates(str(Path("team", "model.gguf")))
    assert named[0] == "mini (2 questions, exact)" and len(named) == 5   # 3 candidates and the rest
    shutil.move("model.gguf", "decoy.gguf")
    assert rates(str(Path("team", "model.gguf"))) == named     # what the file alone gives
    assert rates("decoy.gguf") != named


def test_the_embedded_conversion_reads_the_file_it_is_given_not_one_of_the_same_name_here(files, tmp_path,
                                                                                          monkeypatch):
    """The embedded model's one-time conversion hands transformers the same kind of name."""
    from mdf_guard.models import _convert_gguf_to_safetensors

    path, model, tokenizer = files["llama", "f32"]
    monkeypatch.chdir(tmp_path)
    tiny_gguf("llama", tmp_path / path.name, seed=1)
    _convert_gguf_to_safetensors(path, tmp_path / "converted")
    lm = load_model(ModelSpec(name=str(tmp_path / "converted")))
    ids = tokenizer(sample_text(tokenizer), return_tensors="pt").input_ids
    with torch.no_grad():
        torch.testing.assert_close(lm.model(ids).logits, model(ids).logits, rtol=1e-5, atol=1e-5)


LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 385792\n")


NOT_WHOLE = {   # case: (the file's bytes from a whole file's, the error after its name)
    "empty": (lambda data: b"", "is not a GGUF file (it does not start with the bytes GGUF)"),
    "text": (lambda data: b"a model\n", "is not a GGUF file (it does not start with the bytes GGUF)"),
    "lfs-pointer": (lambda data: LFS_POINTER, "is a Git LFS pointer, not the model's weights"),
    "cut-in-counts": (lambda data: data[:20], "is not a whole GGUF file: cut short or damaged (20 bytes)"),
    "cut-in-metadata": (lambda data: data[:2000], "is not a whole GGUF file: cut short or damaged (2,000 bytes)"),
    "cut-in-tensors": (lambda data: data[:len(data) // 2], "is not a whole GGUF file: cut short or damaged"),
    "cut-at-the-end": (lambda data: data[:-10], "is not a whole GGUF file: cut short or damaged"),
}


@pytest.mark.parametrize("case", NOT_WHOLE)
def test_a_gguf_that_is_not_a_whole_gguf_file_is_one_line_naming_it(files, tmp_path, case):
    """A download or copy cut short, a clone without git-lfs: a file cut in its counts or metadata
    was an internal error (struct.error, a traceback, exit 4), one cut in its tensors a line of
    numpy's on array shapes."""
    cut, expected = NOT_WHOLE[case]
    bad = tmp_path / f"{case}.gguf"
    bad.write_bytes(cut(files["llama", "f32"][0].read_bytes()))
    assert one_line_error(run("probe", "--model", str(bad), "--questions", "1"), bad).startswith(expected)


@pytest.mark.parametrize("case", ["text", "cut-in-metadata", "cut-in-tensors"])
def test_a_damaged_gguf_for_the_embedded_model_is_one_line_naming_it(files, tmp_path, monkeypatch, case):
    """MDF_GUARD_GGUF naming the wrong file, or a download cut short: the one-time conversion was
    a traceback (exit 4)."""
    cut, expected = NOT_WHOLE[case]
    bad = tmp_path / f"{case}.gguf"
    bad.write_bytes(cut(files["llama", "f32"][0].read_bytes()))
    monkeypatch.setenv("MDF_GUARD_GGUF", str(bad))
    result = run("probe", "--model", "embedded", "--questions", "1")
    assert result.exit_code == EXIT_INPUT, result.output
    progress, error = result.stderr.strip().splitlines()   # the conversion's one line of progress, then the error
    assert progress.startswith("mdf-guard: converting") and error.startswith(f"mdf-guard: error: {bad}: {expected}")


def test_a_gpt2_gguf_of_other_than_1024_positions_is_one_line_not_an_internal_error(tmp_path):
    """transformers' GPT-2 GGUF reader sizes the position table at 1,024 whatever the file says,
    then refuses the file's own (RuntimeError: a traceback, exit 4). transformers logs its load
    report, naming the table, above the line (a logging record: not in CliRunner's stderr)."""
    import transformers as tf
    from gguf_files import gguf_tokenizer, write_gguf

    tokenizer = gguf_tokenizer("gpt2")
    eos = tokenizer.eos_token_id
    config = tf.GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=64, n_layer=2, n_head=4,
                           bos_token_id=eos, eos_token_id=eos)
    path = write_gguf(tmp_path / "gpt2-256.gguf", tf.GPT2LMHeadModel(config).eval(), tokenizer)
    result = run("probe", "--model", str(path), "--questions", "1")
    assert result.exit_code == EXIT_INPUT, result.output
    assert result.stderr.strip().splitlines()[-1] == (
        f"mdf-guard: error: {path}: field 'model': cannot load the model: its weights are not of the shapes its "
        "config names (transformers' load report above lists them)")


def test_a_gguf_path_that_is_a_folder_is_one_line_saying_so(tmp_path):
    """It said "GGUF file not found" of a folder that is there."""
    folder = tmp_path / "model.gguf"
    folder.mkdir()
    assert one_line_error(run("probe", "--model", str(folder)), folder) == "is a folder, not a GGUF file"


def test_a_gguf_without_an_end_token_is_refused_with_the_fix_for_a_gguf(tmp_path):
    """It told a GGUF's user to edit a tokenizer_config.json the file does not have: the file's
    metadata names the end token, and gguf's own tool writes a copy that names one."""
    path = tiny_gguf("llama", tmp_path / "no-eos.gguf", eos=False)[0]
    with pytest.raises(InputError) as err:
        load_model(ModelSpec(name=str(path)))
    assert str(err.value).startswith(f"{path}: field 'model': the tokenizer names no end-of-text token (eos_token)")
    assert "set tokenizer.ggml.eos_token_id in the file" in str(err.value) and "tokenizer_config" not in str(err.value)
    fixed = tmp_path / "fixed.gguf"
    subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(path), str(fixed),
                    "--special-token", "eos", "<|im_end|>"], check=True, capture_output=True, timeout=120)
    assert load_model(ModelSpec(name=str(fixed))).tokenizer.eos_token == "<|im_end|>"
