"""The checkpoint doctor against a corpus of broken files generated at test time (tests/unit/doctor_corpus.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lockstep import checkpoint, doctor, stack
from tests.unit.doctor_corpus import LFS_OID, LFS_SIZE, MARKER_NAME, build_hostile

APP_DIR = Path(__file__).resolve().parents[2] / "app"
HOSTILE = {
    "hostile-zip": ["posix.system"],
    "hostile-legacy": ["builtins.eval"],
    "hostile-protocol-0": ["posix.system"],
    "hostile-subprocess": ["subprocess.run"],
    "hostile-stack-global": ["builtins.getattr", "builtins.__import__"],
}


def _serving_streamlit() -> str:
    try:
        return stack.load_manifest()["distributions"]["streamlit"]
    except stack.StackError:
        return "(no manifest)"


# case: (kind, ok, fragments the message must contain)
EXPECTED: dict[str, tuple[str, bool, list[str]]] = {
    "valid": ("ok", True, ["lockstep checkpoint", "run 20261204T120000Z-aaaaaa", "3 classes", "weights_only=True"]),
    "cuda": ("cuda-tensors", True, ["saved on cuda:0", 'map_location="cpu"']),
    "bare-state-dict": ("state-dict", True, ["bare state dict", "5 classes", "save_run"]),
    "legacy-state-dict": ("state-dict", True, ["legacy format", "5 classes"]),
    "stack-mismatch": ("stack-mismatch", True, ["distribution streamlit", "1.0.0", "distribution numpy"]),
    "lfs-pointer": (
        "lfs-pointer",
        False,
        [LFS_OID, f"{LFS_SIZE} bytes (42.7 MiB)", "git lfs pull", "invalid load key, 'v'"],
    ),
    "html": ("html", False, ["HTML page", '"Sign in to continue"', "/resolve/"]),
    "xml": ("xml", False, ["AccessDenied: Access Denied"]),
    "json": ("json", False, ["Repository not found"]),
    "text": ("text", False, ['"404: Not Found"']),
    "empty": ("empty", False, ["empty file (0 bytes)"]),
    "truncated-by-metadata": ("truncated", False, ["cut off at", "metadata.json records"]),
    "checksum-mismatch": ("checksum-mismatch", False, ["records sha256"]),
    "truncated-zip": ("truncated-zip", False, ["PyTorch checkpoint (zip format)", "central directory"]),
    "truncated-legacy": ("truncated-pickle", False, ["legacy format", "storages need"]),
    "truncated-legacy-pickle": ("truncated-pickle", False, ["legacy format", "inside its saved object pickle"]),
    "crc-mismatch": ("corrupt", False, ["damaged PyTorch checkpoint", "archive/data/0 fails its CRC-32 check"]),
    "corrupt-zip-directory": ("corrupt", False, ["central directory cannot be read", "UnicodeDecodeError"]),
    "gzip": ("compressed", False, ["gzip -dk model.pt.gz"]),
    "bzip2": ("compressed", False, ["bzip2 -dk model.pt.bz2"]),
    "xz": ("compressed", False, ["xz -dk model.pt.xz"]),
    "zstd": ("compressed", False, ["zstd -d model.pt.zst"]),
    "zipped-checkpoint": ("zip-not-checkpoint", False, ["contains export/model.pt", "unzip export.zip"]),
    "zip-not-checkpoint": ("zip-not-checkpoint", False, ["word/document.xml"]),
    "torchscript": ("torchscript", False, ["TorchScript archive", "torch.jit.load"]),
    "torch-export": ("torch-export", False, ["torch.export archive", "torch.export.load"]),
    "pickled-module": ("pickled-module", False, ["torch.nn.modules.container.Sequential", "model.state_dict()"]),
    "numpy-scalar": ("unsupported-globals", False, ["numpy._core.multiarray.scalar"]),
    "custom-class": ("unsupported-globals", False, ["tests.unit.doctor_corpus.TrainingConfig"]),
    "plain-pickle": ("plain-pickle", False, ["plain Python pickle (protocol 4", "pickle.dump"]),
    **{name: ("dangerous-pickle", False, callables) for name, callables in HOSTILE.items()},
    "architecture-mismatch": (
        "architecture-mismatch",
        False,
        ["missing keys: classifier.bias, classifier.weight", "unexpected keys: 0.bias, 0.weight, 2.bias, 2.weight"],
    ),
    "metadata-architecture-mismatch": (
        "architecture-mismatch",
        False,
        ["classifier.weight: model [3, 16], file [5, 16]"],
    ),
    "data-parallel-prefix": ("architecture-mismatch", False, ["every key starts with 'module.'", "removeprefix"]),
    "non-finite-weights": ("non-finite-weights", False, ["NaN or infinite values", "classifier.weight"]),
    "duplicate-classes": ("invalid-metadata", False, ["classes ['a', 'b', 'a'] repeat a name"]),
    "zero-std": ("invalid-metadata", False, ["input std [0, 0, 0] is not three positive numbers"]),
    "metrics-not-a-list": ("invalid-metadata", False, ["metrics are not a list of per-epoch records"]),
    "huge-width": ("architecture-mismatch", False, ["features.0.0.weight: model [1000000, 3, 3, 3], file [4, 3, 3"]),
    "unbuildable-width": ("invalid-metadata", False, ["cannot be built", "overflowed"]),
    "created-at-not-text": ("invalid-metadata", False, ["created_at 5 is not a date and time as text"]),
    "confusion-matrix-too-large": ("invalid-metadata", False, ["confusion_matrix is not 3x3 counts"]),
    "stack-malformed": ("invalid-metadata", False, ["recorded training stack has a torch record"]),
    "future-format-version": ("invalid-metadata", False, ["format version 2; this code reads version 1"]),
    "replaced-by-smaller-checkpoint": ("checksum-mismatch", False, ["differs from the checkpoint its run saved"]),
    "safetensors": ("safetensors", False, ["valid safetensors file (1 tensor, 6 values, F32", "load_file"]),
    "safetensors-truncated": ("safetensors-truncated", False, ["24 bytes of data, but the file has 10"]),
    "safetensors-corrupt": ("safetensors-corrupt", False, ["the header is not JSON"]),
    "safetensors-by-name": ("safetensors-corrupt", False, ["over the format's limit"]),
    "safetensors-header-cut": ("safetensors-truncated", False, ["cut off inside its header", "4,096 bytes"]),
    "hdf5": ("other-format", False, ["HDF5"]),
    "numpy-array": ("other-format", False, ["NumPy .npy array file"]),
    "unknown": ("unknown-format", False, ["07 08 09 0a"]),
    "directory": ("not-a-file", False, ["a directory"]),
    "missing": ("missing", False, ["no file exists"]),
}


def _run_doctor(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lockstep.doctor", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture
def torch_load_calls(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record every torch.load call made while the test runs, and fail each one."""
    calls: list[object] = []

    def reject_load(*args, **kwargs):
        calls.append(args)
        raise AssertionError("torch.load must not be called")

    monkeypatch.setattr(torch, "load", reject_load)
    return calls


def test_corpus_has_every_expected_case(doctor_corpus):
    assert set(doctor_corpus) == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_diagnose_names_kind_and_key_facts(doctor_corpus, case):
    kind, ok, fragments = EXPECTED[case]
    diagnosis = doctor.diagnose(doctor_corpus[case])
    message = diagnosis.message()

    assert diagnosis.kind == kind, message
    assert diagnosis.ok is ok
    for fragment in fragments:
        assert fragment in message
    assert json.loads(json.dumps(diagnosis.to_json()))["kind"] == kind


def test_diagnose_broken_files_explain_cause_and_fix(doctor_corpus):
    for case, (_, ok, _) in EXPECTED.items():
        diagnosis = doctor.diagnose(doctor_corpus[case])
        if not ok:
            assert diagnosis.cause, case
            assert diagnosis.fix, case


def test_diagnose_lfs_pointer_facts(doctor_corpus):
    diagnosis = doctor.diagnose(doctor_corpus["lfs-pointer"])

    assert diagnosis.facts["oid"] == LFS_OID
    assert diagnosis.facts["size"] == LFS_SIZE


def test_diagnose_truncated_run_uses_recorded_size(doctor_corpus):
    path = doctor_corpus["truncated-by-metadata"]
    recorded = json.loads((path.parent / "metadata.json").read_text())["model_file"]["bytes"]
    diagnosis = doctor.diagnose(path)

    assert diagnosis.facts["expected_bytes"] == recorded
    assert diagnosis.facts["file_bytes"] == path.stat().st_size
    assert f"records {recorded:,} bytes" in diagnosis.message()


def test_diagnose_stack_mismatch_shows_both_versions(doctor_corpus):
    if "stack-mismatch" not in doctor_corpus:
        pytest.skip("Requires: /opt/lockstep/stack.json, present in lockstep images")
    diagnosis = doctor.diagnose(doctor_corpus["stack-mismatch"])
    streamlit = next(d for d in diagnosis.facts["stack_differences"] if d["field"] == "distribution streamlit")

    assert streamlit == {"field": "distribution streamlit", "training": "1.0.0", "this_image": _serving_streamlit()}
    assert _serving_streamlit() in diagnosis.message()


def test_diagnose_cuda_checkpoint_loads_onto_cpu(doctor_corpus):
    diagnosis = doctor.diagnose(doctor_corpus["cuda"])

    assert diagnosis.facts["devices"] == ["cuda:0"]
    assert all(tensor.device.type == "cpu" for tensor in diagnosis.payload["state_dict"].values())


def test_diagnose_unsupported_globals_lists_them(doctor_corpus):
    numpy_globals = doctor.diagnose(doctor_corpus["numpy-scalar"]).facts["globals"]
    module_globals = doctor.diagnose(doctor_corpus["pickled-module"]).facts["globals"]

    assert "numpy._core.multiarray.scalar" in numpy_globals
    assert "_codecs.encode" not in numpy_globals  # weights_only allows it
    assert "torch.nn.modules.linear.Linear" in module_globals
    assert "torch.nn.modules.activation.ReLU" in module_globals


def test_diagnose_architecture_mismatch_lists_keys(doctor_corpus):
    facts = doctor.diagnose(doctor_corpus["architecture-mismatch"]).facts

    assert facts["unexpected"] == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert "features.0.0.weight" in facts["missing"]
    assert "classifier.weight" in facts["missing"]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_diagnose_hostile_pickle_never_reaches_torch_load(doctor_corpus, torch_load_calls, case):
    diagnosis = doctor.diagnose(doctor_corpus[case])

    assert diagnosis.kind == "dangerous-pickle"
    assert diagnosis.facts["callables"] == HOSTILE[case]
    assert torch_load_calls == []
    assert not (doctor_corpus[case].parent / MARKER_NAME).exists()


HANDCRAFTED = {
    # INST: protocol 0's call of a class or function named inline.
    "inst": (b"(S'echo'\nios\nsystem\n.", "os.system"),
    # Python 2 names, which Unpickler maps to builtins.
    "python-2-builtin": (b"c__builtin__\neval\n(S'1'\ntR.", "builtins.eval"),
    # A module name computed at load time, so no name is known in advance.
    "computed-global": (
        b"\x80\x04cbuiltins\nstr\n(Vos\ntRVsystem\n\x93.",
        "<a global whose name is computed at load time>",
    ),
    # An extension code that no registry maps.
    "extension-code": (b"\x80\x02\x82\x07.", "<extension code 7, which no copyreg registration names>"),
}


@pytest.mark.parametrize("case", sorted(HANDCRAFTED))
def test_diagnose_rejects_handcrafted_pickle(tmp_path, torch_load_calls, case):
    data, callable_name = HANDCRAFTED[case]
    path = tmp_path / "model.pt"
    path.write_bytes(data)
    diagnosis = doctor.diagnose(path)

    assert diagnosis.kind == "dangerous-pickle"
    assert diagnosis.facts["callables"] == [callable_name]
    assert torch_load_calls == []


def test_hostile_corpus_runs_code_when_unpickled(tmp_path):
    """Proves the hostile files are real: unpickling each one, in a child process, creates the marker."""
    files = build_hostile(tmp_path)
    script = """
import json, pickle, sys, torch
from pathlib import Path
marker = Path(sys.argv[1])
created = []
for name, path in json.loads(sys.argv[2]).items():
    if path.endswith(".pt"):
        torch.load(path, weights_only=False)
    else:
        with open(path, "rb") as handle:
            pickle.load(handle)
    if marker.exists():
        created.append(name)
        marker.unlink()
print(json.dumps(created))
"""
    arguments = [str(tmp_path / MARKER_NAME), json.dumps({case: str(path) for case, path in files.items()})]
    result = subprocess.run([sys.executable, "-c", script, *arguments], capture_output=True, text=True, timeout=300)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == list(files)


def test_cli_on_hostile_files_runs_nothing(doctor_corpus):
    paths = [doctor_corpus[case] for case in sorted(HOSTILE)]
    result = _run_doctor(*paths)

    assert result.returncode == 1, result.stderr
    assert result.stdout.count("when unpickled") == len(paths)
    assert not any((path.parent / MARKER_NAME).exists() for path in paths)


def test_cli_exits_zero_when_every_file_loads(doctor_corpus):
    result = _run_doctor(doctor_corpus["valid"], doctor_corpus["bare-state-dict"])

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 files: 2 load, 0 broken" in result.stdout


def test_cli_exits_one_when_any_file_is_broken(doctor_corpus):
    result = _run_doctor(doctor_corpus["valid"], doctor_corpus["lfs-pointer"])

    assert result.returncode == 1
    assert LFS_OID in result.stdout
    assert "2 files: 1 load, 1 broken" in result.stdout


@pytest.mark.parametrize(
    "arguments",
    [[], ["--no-such-option", "model.pt"], ["--scan"], ["--scan", "model.pt", "--", "other.pt"]],
    ids=["no-arguments", "unknown-option", "scan-without-folder", "scan-and-paths"],
)
def test_cli_usage_errors_exit_two(arguments):
    result = _run_doctor(*arguments)

    assert result.returncode == 2
    assert "error:" in result.stderr


def test_cli_scan_of_a_file_exits_two(doctor_corpus):
    result = _run_doctor("--scan", doctor_corpus["valid"])

    assert result.returncode == 2
    assert "expects folders" in result.stderr


def test_cli_json_lists_one_object_per_file(doctor_corpus):
    cases = ["valid", "lfs-pointer", "hostile-zip"]
    result = _run_doctor("--json", *(doctor_corpus[case] for case in cases))
    report = json.loads(result.stdout)

    assert result.returncode == 1
    assert [entry["kind"] for entry in report] == ["ok", "lfs-pointer", "dangerous-pickle"]
    assert [entry["ok"] for entry in report] == [True, False, False]
    assert [entry["path"] for entry in report] == [str(doctor_corpus[case]) for case in cases]
    for entry in report:
        assert set(entry) == {"path", "kind", "ok", "what", "cause", "fix", "notes", "facts"}
    assert report[1]["facts"]["oid"] == LFS_OID


def test_cli_scan_finds_pointer_named_model_pt(tmp_path, doctor_corpus):
    pointer = tmp_path / "project" / "models" / "resnet" / "model.pt"
    pointer.parent.mkdir(parents=True)
    shutil.copy(doctor_corpus["lfs-pointer"], pointer)
    shutil.copy(doctor_corpus["valid"], tmp_path / "project" / "models" / "good.pt")
    shutil.copy(doctor_corpus["lfs-pointer"], tmp_path / "project" / "pointer-notes.txt")  # not a weight file
    result = _run_doctor("--scan", tmp_path / "project")

    assert result.returncode == 1
    assert f"{pointer}: a Git LFS pointer file" in result.stderr
    assert LFS_OID in result.stderr
    assert "pointer-notes.txt" not in result.stderr


def test_cli_scan_passes_folder_without_pointers(tmp_path, doctor_corpus):
    shutil.copy(doctor_corpus["valid"], tmp_path / "model.pt")
    result = _run_doctor("--scan", tmp_path)

    assert result.returncode == 0
    assert "No Git LFS pointers among 1 weight file under" in result.stdout


def test_cli_scan_skips_virtualenv_and_git(tmp_path, doctor_corpus):
    for folder in (".venv/lib/site-packages", ".git/objects"):
        (tmp_path / folder).mkdir(parents=True)
        shutil.copy(doctor_corpus["lfs-pointer"], tmp_path / folder / "hidden.pt")
    shutil.copy(doctor_corpus["valid"], tmp_path / "model.pt")
    result = _run_doctor("--scan", tmp_path)

    assert result.returncode == 0
    assert "No Git LFS pointers among 1 weight file under" in result.stdout


def test_doctor_works_where_torch_cannot_be_imported(tmp_path, doctor_corpus):
    stub = tmp_path / "stub" / "torch"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('torch is not installed here')\n")
    env = dict(os.environ, PYTHONPATH=f"{stub.parent}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    cases = ["lfs-pointer", "html", "truncated-zip", "hostile-zip", "pickled-module", "safetensors"]
    script = "import sys, lockstep.doctor as d; print(' '.join(d.diagnose(p).kind for p in sys.argv[1:]))"

    diagnosed = subprocess.run(
        [sys.executable, "-c", script, *(str(doctor_corpus[case]) for case in cases)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    scanned = _run_doctor("--scan", doctor_corpus["lfs-pointer"].parent, env=env)

    assert diagnosed.returncode == 0, diagnosed.stderr
    assert diagnosed.stdout.split() == [EXPECTED[case][0] for case in cases]
    assert scanned.returncode == 1, scanned.stderr
    assert LFS_OID in scanned.stderr


def test_compare_state_dict_of_same_model_is_none():
    from lockstep.model import build_model

    model = build_model({"name": "small-cnn", "num_classes": 3, "width": 4})
    assert doctor.compare_state_dict(model.state_dict(), model.state_dict(), "model.pt") is None


def _run_dir_with(tmp_path: Path, model_file: Path) -> Path:
    run_dir = tmp_path / "checkpoints" / "runs" / "20261204T120000Z-aaaaaa"
    run_dir.mkdir(parents=True)
    shutil.copy(model_file, run_dir / checkpoint.MODEL_FILE)
    (tmp_path / "checkpoints" / "latest").write_text(run_dir.name + "\n")
    return run_dir


def test_load_checkpoint_rejects_bare_state_dict(tmp_path, doctor_corpus):
    run_dir = _run_dir_with(tmp_path, doctor_corpus["bare-state-dict"])
    with pytest.raises(checkpoint.CheckpointError) as raised:
        checkpoint.load_checkpoint(run_dir)

    assert raised.value.diagnosis.kind == "not-lockstep"
    assert "save_run" in raised.value.diagnosis.fix


def test_smoke_prints_diagnosis_of_broken_checkpoint(tmp_path, doctor_corpus):
    _run_dir_with(tmp_path, doctor_corpus["lfs-pointer"])
    env = dict(os.environ, LOCKSTEP_CHECKPOINT_DIR=str(tmp_path / "checkpoints"))
    result = subprocess.run(
        [sys.executable, "-m", "lockstep.smoke"], capture_output=True, text=True, env=env, timeout=300
    )

    assert result.returncode == 1
    assert "a Git LFS pointer file" in result.stderr
    assert LFS_OID in result.stderr
    assert "git lfs pull" in result.stderr


def _page_for_broken_run(app_dir: str, run_dir: str) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, app_dir)
    import views
    from lockstep import checkpoint

    try:
        checkpoint.load_checkpoint(Path(run_dir))
    except checkpoint.CheckpointError as error:
        views.show_broken_checkpoint(Path(run_dir), error)


def test_show_broken_checkpoint_renders_what_cause_fix(tmp_path, doctor_corpus):
    if not (APP_DIR / "views.py").exists():
        pytest.skip(f"Requires: the app's views.py at {APP_DIR}")
    from streamlit.testing.v1 import AppTest

    run_dir = _run_dir_with(tmp_path, doctor_corpus["lfs-pointer"])
    page = AppTest.from_function(_page_for_broken_run, args=(str(APP_DIR), str(run_dir)), default_timeout=60)
    page.run()
    markdown = [element.value for element in page.markdown]

    assert not page.exception
    assert "Git LFS pointer file" in page.error[0].value
    assert LFS_OID in page.error[0].value
    assert any(text.startswith("**Likely cause:**") for text in markdown)
    assert any(text.startswith("**Fix:**") and "git lfs pull" in text for text in markdown)
