"""Streamlit app: classify images with the newest checkpoint and explain the model.

    streamlit run app/streamlit_app.py     # in the serving image: docker compose up

The page reads top to bottom: which run is served and whether its training
stack matches this image's, then prediction (uploads or samples), then the
model card. The model loads once per run and is shared by every session.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st

import views
from lockstep import checkpoint, stack
from lockstep.settings import ServeSettings, SettingsError

log = logging.getLogger("lockstep.app")

st.set_page_config(page_title="lockstep classifier", page_icon="🔒", layout="wide")


@st.cache_resource(show_spinner=False, max_entries=4)
def load_run(run_dir: str) -> checkpoint.Checkpoint:
    # Keyed by the run folder: runs are renamed into place whole and never change afterwards.
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
    st.error(f"Invalid setting: {error}")
    st.stop()

runs = checkpoint.list_runs(settings.checkpoint_dir)
if not runs:
    st.error(
        f"No checkpoint yet in `{settings.checkpoint_dir}`. Train one with `docker compose up` "
        "(or `docker compose run --rm train`), then reload this page."
    )
    st.stop()

latest = checkpoint.latest_run(settings.checkpoint_dir)
run_id = views.run_picker(runs, latest)
run_dir = settings.checkpoint_dir / "runs" / run_id

try:
    with st.spinner(f"Loading model from run {run_id}…"):
        loaded = load_run(str(run_dir))
except checkpoint.CheckpointError as error:
    views.show_broken_checkpoint(run_dir, error)
    st.stop()

views.show_parity(loaded.metadata.get("stack"), serving_manifest())

predict_tab, card_tab = st.tabs(["Predict", "Model card"])
with predict_tab:
    views.predict_section(loaded, settings)
with card_tab:
    views.model_card(loaded)
