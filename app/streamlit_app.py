"""Streamlit app: classify images with a trained checkpoint and explain the model.

    streamlit run app/streamlit_app.py     # in the serving image, which `docker compose up` starts

The code below follows the page from top to bottom. The sidebar holds the
run picker. The page shows a summary of the served model and whether its
training stack matches this image's, then two tabs: Predict (uploads or
one-click samples) and Model card. Each run's model loads once per process
and every session shares it. Known failures end in st.error with what to
do, never in a traceback.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import streamlit as st

import model_card
import predict_panel
import views
from lockstep import checkpoint, stack
from lockstep.settings import ServeSettings, SettingsError

log = logging.getLogger("lockstep.app")
# Streamlit configures only its own loggers, so without this the lockstep INFO lines never reach the container log.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

st.set_page_config(page_title="lockstep classifier", page_icon="🔒", layout="wide")


@st.cache_resource(show_spinner=False, max_entries=4)
def load_run(run_dir: str) -> checkpoint.Checkpoint:
    # Keyed by the run folder: runs are renamed into place whole and never change afterwards.
    # A load that raises is not cached, so a repaired file loads on the next rerun.
    return checkpoint.load_checkpoint(Path(run_dir))


@st.cache_resource(show_spinner=False)
def serving_manifest() -> dict | None:
    try:
        return stack.load_manifest()
    except stack.StackError as error:
        log.warning("No serving stack manifest: %s", error)
        return None


st.title("lockstep image classifier")

try:
    settings = ServeSettings.from_env()
except SettingsError as error:
    log.error("Invalid setting:\n%s", error)
    st.error("Invalid setting:\n\n" + "\n\n".join(str(error).splitlines()))
    st.stop()

try:
    runs = checkpoint.list_runs(settings.checkpoint_dir)
except OSError as error:
    log.error("Cannot list runs in %s: %s", settings.checkpoint_dir, error)
    st.error(
        f"Cannot read the checkpoint folder `{settings.checkpoint_dir}` ({error.strerror}). Check that the "
        f"`checkpoints` volume is mounted there and readable by UID {os.getuid()}."
    )
    st.stop()
if not runs:
    views.show_no_checkpoint(settings.checkpoint_dir)
    st.stop()

latest = checkpoint.latest_run(settings.checkpoint_dir)
run_id = views.run_picker(settings.checkpoint_dir, runs, latest)
run_dir = settings.checkpoint_dir / "runs" / run_id

try:
    with st.spinner(f"Loading the model of run {run_id}…"):
        loaded = load_run(str(run_dir))
except checkpoint.CheckpointError as error:
    log.error("Run %s does not load:\n%s", run_id, error)
    views.show_broken_checkpoint(run_dir, error)
    st.stop()
except (KeyError, TypeError, ValueError, RuntimeError) as error:
    # Metadata that names no buildable model: a missing key, an unknown architecture, weights that do not fit.
    log.exception("Run %s has metadata this code cannot rebuild a model from", run_id)
    views.show_invalid_metadata(run_dir, error)
    st.stop()

views.show_summary(loaded, is_latest=run_id == latest)
views.show_parity(loaded.metadata.get("stack"), serving_manifest())

predict_tab, card_tab = st.tabs(["Predict", "Model card"])
with predict_tab:
    predict_panel.show(loaded, settings)
with card_tab:
    model_card.show(loaded)
