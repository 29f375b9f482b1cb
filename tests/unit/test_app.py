"""Tests of the Streamlit app with Streamlit's AppTest, which runs the real script without a browser.

AppTest in Streamlit 1.67 drives st.file_uploader itself (upload and
set_value), so uploads go through the app's own code. It hands the bytes
straight to the script, though, so Streamlit's per-file byte limit
(STREAMLIT_SERVER_MAX_UPLOAD_SIZE), which the browser and the upload
endpoint enforce, is left to the end-to-end browser test.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from lockstep import checkpoint, stack
from lockstep.data import draw_shape
from lockstep.predict import open_image, predict

APP = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
# Seconds one script run may take: the first in a process loads the model, and the machine may be busy.
RUN_TIMEOUT = 120
OLDER_RUN = "20260101T000000Z-aaaaaa"
NEWER_RUN = "20260102T000000Z-bbbbbb"


def _png(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def _shape_png(shape: str, seed: int = 3, size: int = 16) -> bytes:
    return _png(draw_shape(shape, np.random.default_rng(seed), size))


def _open_app(monkeypatch: pytest.MonkeyPatch, checkpoint_dir: Path, **env: str) -> AppTest:
    monkeypatch.setenv("LOCKSTEP_CHECKPOINT_DIR", str(checkpoint_dir))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT).run()


def _text(elements) -> str:
    return "\n".join(str(element.value) for element in elements)


def _results(app: AppTest) -> list[str]:
    """Return the heading of each prediction, e.g. '**a.png** → **circle** (71.2%)'."""
    return [markdown.value for markdown in app.markdown if " → " in markdown.value]


def _checkpoint_dir(run_dir: Path) -> Path:
    return run_dir.parent.parent


def _clone_run(source: Path, checkpoint_dir: Path, run_id: str, **metadata_changes) -> Path:
    """Save source's weights and held-out images as a new run, with some metadata replaced."""
    payload = torch.load(source / checkpoint.MODEL_FILE, map_location="cpu", weights_only=True)
    metadata = dict(payload["metadata"], run_id=run_id, **metadata_changes)
    samples = {}
    for name in payload["metadata"]["classes"]:
        samples[name] = []
        for path in sorted((source / "samples" / name).glob("*.png")):
            with Image.open(path) as image:
                samples[name].append(image.convert("RGB"))
    return checkpoint.save_run(checkpoint_dir, run_id, payload["state_dict"], metadata, samples)


def _assert_no_traceback(app: AppTest) -> None:
    assert not app.exception, _text(app.exception)


def test_app_without_runs_names_train_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    app = _open_app(monkeypatch, tmp_path)

    _assert_no_traceback(app)
    assert len(app.error) == 1
    assert f"`{tmp_path}` contains no finished run" in app.error[0].value
    assert "`docker compose run --rm train`" in app.error[0].value
    assert app.code[0].value == "docker compose run --rm train"
    assert not app.file_uploader


def test_app_invalid_setting_names_variable(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    app = _open_app(monkeypatch, _checkpoint_dir(trained_run), LOCKSTEP_TOP_K="zero")

    _assert_no_traceback(app)
    assert "LOCKSTEP_TOP_K='zero' is invalid" in _text(app.error)
    assert not app.file_uploader


def test_app_summarises_latest_run(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    metadata = checkpoint.read_metadata(trained_run)
    app = _open_app(monkeypatch, _checkpoint_dir(trained_run))

    _assert_no_traceback(app)
    assert not app.error
    assert app.selectbox(key="run").value == trained_run.name
    assert f"Serving run `{trained_run.name}` (latest)" in _text(app.markdown)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Validation accuracy"] == f"{metadata['metrics'][-1]['val_accuracy']:.1%}"
    assert metrics["Classes"] == "4"
    assert "Stack parity: this image runs the stack the model was trained with" in _text(app.success)
    assert [tab.label for tab in app.tabs] == ["Predict", "Model card"]
    assert "top 3 predictions" in _text(app.info)


def test_model_card_charts_curves_and_confusion(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    metadata = checkpoint.read_metadata(trained_run)
    app = _open_app(monkeypatch, _checkpoint_dir(trained_run))

    card = _text(app.tabs[1].markdown)
    assert "**Classes (4):** circle, cross, square, triangle" in card
    assert "**Data:** generated shapes" in card
    assert f"{metadata['data']['val_images']} validation images" in card
    assert f"**Training:** {len(metadata['metrics'])} epochs" in card
    assert f"of {metadata['data']['val_images']} images on the diagonal" in card
    assert "**Loss per epoch**" in card
    assert "**Accuracy per epoch**" in card
    # Two line charts (loss, accuracy) and the confusion matrix, all Vega-Lite charts.
    assert len(app.tabs[1].get("vega_lite_chart")) == 3


def test_app_classifies_uploaded_images(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    loaded = checkpoint.load_checkpoint(trained_run)
    uploads = [
        ("circle.png", _shape_png("circle"), "image/png"),
        ("cross.jpg", _png(draw_shape("cross", np.random.default_rng(4), 40), "JPEG"), "image/jpeg"),
    ]
    app = _open_app(monkeypatch, _checkpoint_dir(trained_run))
    app.file_uploader(key="uploads").set_value(uploads).run()

    _assert_no_traceback(app)
    assert not app.error
    expected = predict(loaded, [open_image(data, 10_000) for _, data, _ in uploads], top_k=3)
    assert _results(app) == [
        f"**{name}** → **{ranked[0].label}** ({ranked[0].probability:.1%})"
        for (name, _, _), ranked in zip(uploads, expected, strict=True)
    ]
    assert app.dataframe[0].value["image"].tolist() == ["circle.png", "cross.jpg"]
    captions = [caption for image in app.image for caption in image.captions]
    assert captions.count("what the model saw, 16x16") == 2
    assert "original, 40x40" in captions


def test_app_non_image_upload_keeps_others(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    app = _open_app(monkeypatch, _checkpoint_dir(trained_run))
    app.file_uploader(key="uploads").set_value(
        [
            ("notes.png", b"meeting notes, not pixels", "image/png"),
            ("circle.png", _shape_png("circle"), "image/png"),
        ]
    ).run()

    _assert_no_traceback(app)
    assert len(app.error) == 1
    assert app.error[0].value.startswith("notes.png was not classified: the file is not a PNG, JPEG")
    assert "upload it again" in app.error[0].value
    assert len(_results(app)) == 1
    assert _results(app)[0].startswith("**circle.png** → ")

    app.button(key="sample-square").click().run()
    _assert_no_traceback(app)
    assert len(_results(app)) == 2


def test_app_rejects_image_over_pixel_limit(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    app = _open_app(monkeypatch, _checkpoint_dir(trained_run), LOCKSTEP_MAX_IMAGE_PIXELS="1000")
    app.file_uploader(key="uploads").upload("big.png", _shape_png("cross", size=64), "image/png").run()

    _assert_no_traceback(app)
    assert "big.png was not classified: the image is 64x64 = 4,096 pixels" in _text(app.error)
    assert "over the limit of 1,000 (LOCKSTEP_MAX_IMAGE_PIXELS)" in _text(app.error)
    assert "downscale it" in _text(app.error)
    assert _results(app) == []


def test_app_sample_buttons_add_and_clear(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    app = _open_app(monkeypatch, _checkpoint_dir(trained_run))
    assert not app.button(key="sample-circle").value

    app.button(key="sample-circle").click().run()
    app.button(key="sample-cross").click().run()

    _assert_no_traceback(app)
    results = _results(app)
    assert len(results) == 2
    assert results[0].startswith("**generated circle #1** → ")
    assert results[1].startswith("**generated cross #2** → ")

    app.button(key="clear-samples").click().run()
    assert _results(app) == []
    assert "top 3 predictions" in _text(app.info)


def test_app_samples_held_out_images_of_folder_run(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder_data = {"kind": "folder", "description": "image folder /data", "path": "/data", "train_images": 96}
    _clone_run(trained_run, tmp_path, NEWER_RUN, data=folder_data)
    app = _open_app(monkeypatch, tmp_path)
    assert "Or add a held-out image saved with the run:" in _text(app.caption)

    app.button(key="sample-triangle").click().run()
    app.button(key="sample-triangle").click().run()
    app.button(key="sample-triangle").click().run()

    _assert_no_traceback(app)
    results = _results(app)
    # The run saved two held-out triangles (LOCKSTEP_HOLDOUT_PER_CLASS=2), so the third click wraps around.
    assert [result.split(" → ")[0] for result in results] == [
        "**held-out triangle #1**",
        "**held-out triangle #2**",
        "**held-out triangle #1**",
    ]
    assert "trained on 96 images from `/data`" in _text(app.markdown)


def test_app_diagnoses_lfs_pointer(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    run_dir = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, run_dir)
    (run_dir / checkpoint.MODEL_FILE).write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 376117\n"
    )
    checkpoint.write_latest(tmp_path, trained_run.name)
    app = _open_app(monkeypatch, tmp_path)

    _assert_no_traceback(app)
    assert "does not load. It is a Git LFS pointer file" in _text(app.error)
    assert "git lfs pull" in _text(app.markdown)
    assert "Pick another run in the sidebar" in _text(app.info)
    assert not app.file_uploader


def test_app_reports_unknown_architecture(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _clone_run(trained_run, tmp_path, NEWER_RUN, architecture={"name": "resnet-9000", "num_classes": 4})
    app = _open_app(monkeypatch, tmp_path)

    _assert_no_traceback(app)
    assert "unknown architecture 'resnet-9000'" in _text(app.error)
    assert "Pick another run in the sidebar" in _text(app.info)


def test_app_serves_picked_older_run(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _clone_run(trained_run, tmp_path, OLDER_RUN)
    _clone_run(trained_run, tmp_path, NEWER_RUN)
    accuracy = checkpoint.read_metadata(trained_run)["metrics"][-1]["val_accuracy"]
    app = _open_app(monkeypatch, tmp_path)
    picker = app.selectbox(key="run")
    # Newest first, each labelled with the finish time in its run id and its validation accuracy.
    assert picker.options == [
        f"2026-01-02 00:00 · acc {accuracy:.1%} · latest",
        f"2026-01-01 00:00 · acc {accuracy:.1%}",
    ]
    assert picker.value == NEWER_RUN
    assert f"Serving run `{NEWER_RUN}` (latest)" in _text(app.markdown)

    picker.select(OLDER_RUN).run()

    _assert_no_traceback(app)
    assert app.selectbox(key="run").value == OLDER_RUN
    summary = _text(app.markdown)
    assert f"Serving run `{OLDER_RUN}`:" in summary
    assert f"**Run:** `{OLDER_RUN}`" in summary


def test_app_warns_on_stack_difference(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    try:
        serving = stack.load_manifest()
    except stack.StackError:
        pytest.skip("Requires: the serving image's stack manifest (run with scripts/test unit)")
    trained_with = dict(serving, distributions=dict(serving["distributions"], numpy="0.0.1", tensorflow="9.9.9"))
    _clone_run(trained_run, tmp_path, NEWER_RUN, stack=trained_with)
    app = _open_app(monkeypatch, tmp_path)

    _assert_no_traceback(app)
    assert "differs from the training stack in 2 place(s)" in _text(app.warning)
    assert not app.success
    assert app.expander[0].label == "Show the package-by-package diff (2)"
    diff = app.expander[0].dataframe[0].value
    assert diff.to_dict("records") == [
        {"what": "distribution numpy", "training image": "0.0.1", "this image": serving["distributions"]["numpy"]},
        {"what": "distribution tensorflow", "training image": "9.9.9", "this image": "(absent)"},
    ]


def test_app_parity_unknown_without_stack(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _clone_run(trained_run, tmp_path, NEWER_RUN, stack=None)
    app = _open_app(monkeypatch, tmp_path)

    _assert_no_traceback(app)
    assert "Stack parity unknown: the checkpoint records no training stack" in _text(app.warning)


def test_app_loads_model_once(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # A fresh folder, so that no earlier test has the model in Streamlit's cache yet.
    _clone_run(trained_run, tmp_path, NEWER_RUN)
    loads = []

    def counting_load(run_dir: Path) -> checkpoint.Checkpoint:
        loads.append(run_dir)
        return load_checkpoint(run_dir)

    load_checkpoint = checkpoint.load_checkpoint
    monkeypatch.setattr(checkpoint, "load_checkpoint", counting_load)
    first = _open_app(monkeypatch, tmp_path)
    first.button(key="sample-circle").click().run()
    second = _open_app(monkeypatch, tmp_path)

    _assert_no_traceback(first)
    _assert_no_traceback(second)
    assert loads == [tmp_path / "runs" / NEWER_RUN]


def test_app_malformed_metadata_json(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    older = _clone_run(trained_run, tmp_path, OLDER_RUN)
    _clone_run(trained_run, tmp_path, NEWER_RUN)
    # The sidebar labels every run from its metadata.json, which nothing validated.
    (older / checkpoint.METADATA_FILE).write_text('{"metrics": "x", "created_at": 5, "classes": 3}')
    app = _open_app(monkeypatch, tmp_path)

    _assert_no_traceback(app)
    assert app.selectbox(key="run").options[1] == "2026-01-01 00:00"
    assert f"Serving run `{NEWER_RUN}` (latest)" in _text(app.markdown)


def test_app_repeated_class_name(trained_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _clone_run(trained_run, tmp_path, NEWER_RUN, classes=["circle", "circle", "square", "triangle"])
    app = _open_app(monkeypatch, tmp_path)

    _assert_no_traceback(app)
    assert "repeat a name" in _text(app.error)
    assert "Pick another run in the sidebar" in _text(app.info)
    assert not app.file_uploader


def test_app_upload_names_escaped(trained_run: Path, monkeypatch: pytest.MonkeyPatch):
    app = _open_app(monkeypatch, _checkpoint_dir(trained_run))
    app.file_uploader(key="uploads").set_value(
        [("a`b*c*[x](y).png", b"not pixels", "image/png"), ("__bold__.png", _shape_png("circle"), "image/png")]
    ).run()

    _assert_no_traceback(app)
    assert app.error[0].value.startswith(r"a\`b\*c\*\[x\](y).png was not classified")
    assert _results(app)[0].startswith(r"**\_\_bold\_\_.png** → ")
