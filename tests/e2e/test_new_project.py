"""scripts/new-project: the copy it makes, what it renames, and that the copy passes its own checks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import REPO, require_docker

NAME = f"demo-{os.getpid()}"
# Variables that name the template's compose project and images, unset for the copy.
COPY_UNSET = ("COMPOSE_PROJECT_NAME", "IMAGE_NAMESPACE")


def _run(args: list[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=dict(os.environ, **env), capture_output=True, text=True, timeout=timeout)


def _run_in_copy(args: list[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """Run args in a generated project with its own compose project name and image namespace.

    The names set for the template's run (e.g. COMPOSE_PROJECT_NAME) would point the copy's
    `make clean` at the template's stack.
    """
    inherited = {key: value for key, value in os.environ.items() if key not in COPY_UNSET}
    return subprocess.run(args, cwd=cwd, env=dict(inherited, **env), capture_output=True, text=True, timeout=timeout)


def _new_project(name: str, dest: Path) -> subprocess.CompletedProcess:
    return _run([str(REPO / "scripts" / "new-project"), name, str(dest)], cwd=REPO)


def _tracked_files(repo: Path) -> set[str]:
    listed = _run(["git", "ls-files"], cwd=repo).stdout.splitlines()
    return {path for path in listed if (repo / path).exists()}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("new-project") / NAME
    result = _new_project(NAME, dest)
    assert result.returncode == 0, result.stderr
    assert f"Created {NAME} in {dest}" in result.stdout
    return dest


def test_new_project_copies_tracked_files_only(project: Path):
    copied = _tracked_files(project) - {"README.md"}
    assert copied == _tracked_files(REPO) - {"README.md"}
    for ignored in (".venv", "artifacts", "checkpoints"):
        assert not (project / ignored).exists()
    assert os.access(project / "scripts" / "lint", os.X_OK)


def test_new_project_has_one_commit_and_clean_tree(project: Path):
    log = _run(["git", "log", "--format=%s"], cwd=project).stdout.splitlines()
    assert log == [f"Start {NAME} from the lockstep template"]
    assert _run(["git", "status", "--porcelain"], cwd=project).stdout == ""


def test_new_project_renames_compose_project_and_images(project: Path):
    compose = (project / "docker-compose.yml").read_text()
    assert f"\nname: {NAME}\n" in compose
    assert f"${{IMAGE_NAMESPACE:-{NAME}}}/train" in compose
    assert f"dev.lockstep.project: {NAME}" in compose
    assert "IMAGE_NAMESPACE:-lockstep" not in compose
    for script in ("test", "check-parity"):
        assert f"IMAGE_NAMESPACE:-{NAME}}}" in (project / "scripts" / script).read_text()


def test_new_project_relabels_both_dockerfiles(project: Path):
    for dockerfile in ("Dockerfile.train", "Dockerfile.serve"):
        text = (project / dockerfile).read_text()
        assert f'dev.lockstep.project="{NAME}"' in text
        assert 'dev.lockstep.project="lockstep"' not in text
        assert f'org.opencontainers.image.title="{NAME}-' in text


def test_new_project_titles_readme(project: Path):
    assert (project / "README.md").read_text().splitlines()[0] == f"# {NAME}"


def test_new_project_can_serve_as_template(project: Path, tmp_path: Path):
    result = _run([str(project / "scripts" / "new-project"), "second-demo", str(tmp_path / "second")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\nname: second-demo\n" in (tmp_path / "second" / "docker-compose.yml").read_text()


INVALID_NAMES = ["Demo", "1demo", "demo-", "de--mo", "d", "demo_x", "a" * 41, "a-" * 20 + "b", "lockstep"]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_new_project_rejects_invalid_name(name: str, tmp_path: Path):
    result = _new_project(name, tmp_path / "dest")
    assert result.returncode == 2
    assert f"'{name}'" in result.stderr
    assert not (tmp_path / "dest").exists()


def test_new_project_rejects_non_empty_dest(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("mine")
    result = _new_project("demo", tmp_path)
    assert result.returncode == 2
    assert "is not empty" in result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.txt"]


def test_new_project_rejects_dest_inside_template():
    dest = REPO / "data" / f"nested-{os.getpid()}"
    result = _new_project("demo", dest)
    assert result.returncode == 2
    assert f"DEST '{dest}' is inside the template's folder" in result.stderr
    assert not dest.exists()


def test_new_project_next_steps_set_data_dir(tmp_path: Path):
    # Compose mounts data/ only when DATA_DIR is set, so the printed command must set it.
    result = _new_project("demo", tmp_path / "demo")
    assert result.returncode == 0, result.stderr
    assert "DATA_DIR=./data docker compose up" in result.stdout


def test_new_project_passes_lint(project: Path):
    # The template's .venv contains the tools that dev.txt pins. The copy's dev.txt is
    # identical, so linking it saves installing them again.
    (project / ".venv").symlink_to(REPO / ".venv")
    result = _run([str(project / "scripts" / "lint")], cwd=project)
    assert result.returncode == 0, result.stderr
    assert "0 failed" in result.stderr


def test_new_project_lock_is_current(project: Path):
    require_docker()
    result = _run([str(project / "scripts" / "lock"), "--check"], cwd=project, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is up to date" in result.stderr


def test_new_project_builds_and_passes_unit_tests(project: Path):
    require_docker()
    tag = f"new-project-{os.getpid()}"
    images = [f"{NAME}/train:{tag}", f"{NAME}/serve:{tag}"]
    # What `make clean` must leave: another tag of the copy's image, and another
    # compose project's volume with the copy's label, as a concurrent run would have.
    kept_image = f"{NAME}/serve:{tag}-kept"
    kept_volume = f"{NAME}-kept-{os.getpid()}_checkpoints"
    try:
        # SKIP_BUILD may be set for the template's own images (.ci/run sets it); these must be built.
        result = _run_in_copy(
            [str(project / "scripts" / "test"), "unit"], cwd=project, timeout=1800, IMAGE_TAG=tag, SKIP_BUILD=""
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        assert " passed" in result.stdout.splitlines()[-1]
        labels = _run(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", images[1]], cwd=project)
        assert f'"dev.lockstep.project":"{NAME}"' in labels.stdout
        if shutil.which("make"):
            _run(["docker", "tag", images[1], kept_image], cwd=project)
            volume_labels = [f"com.docker.compose.project={NAME}-kept-{os.getpid()}", f"dev.lockstep.project={NAME}"]
            _run(
                ["docker", "volume", "create", "--label", volume_labels[0], "--label", volume_labels[1], kept_volume],
                cwd=project,
            )
            cleaned = _run_in_copy(["make", "clean"], cwd=project, IMAGE_TAG=tag)
            assert cleaned.returncode == 0, cleaned.stderr
            for image in images:
                assert _run(["docker", "image", "inspect", image], cwd=project).returncode != 0
            assert _run(["docker", "image", "inspect", kept_image], cwd=project).returncode == 0
            assert _run(["docker", "volume", "inspect", kept_volume], cwd=project).returncode == 0
    finally:
        _run(["docker", "image", "rm", "--force", *images, kept_image], cwd=project)
        _run(["docker", "volume", "rm", kept_volume], cwd=project)
