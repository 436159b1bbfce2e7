"""``healthos evaluate NAME --cohort``: held out, never seen (external validation), every row.

The shipped champions were trained on every shared row (deterioration: PhysioNet 2012
sets A and B; readmission: the whole ``diabetic_data.csv.gz``), so the tests build small
real slices: set-A stays beside a "set-C" archive holding other real stays (a source the
champion never read, like another hospital's data), and UCI rows under the training
file's name and under another hospital's name.
"""

from __future__ import annotations

import gzip
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from models.datasets import is_test_patient, load_physionet2012, load_uci_diabetes
from models.evaluation.model import evaluate_model
from reasoning.inference import OnnxModel, shipped_models_dir
from serving.cli import app
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.integration

PHYSIONET = "physionet-2012-icu-mortality"
UCI = "uci-diabetes-130/diabetic_data.csv.gz"
DETERIORATION_SEED = 20121
READMISSION_SEED = 20141


def _copy_stays(source: Path, target: Path, set_name: str, count: int) -> list[str]:
    """Write the first ``count`` stays of ``source`` as ``target`` (members ``set_name/ID.txt``)."""
    ids: list[str] = []
    with tarfile.open(source, "r:gz") as archive, tarfile.open(target, "w:gz") as out:
        for member in archive:
            if not member.isfile() or not member.name.endswith(".txt"):
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            info = tarfile.TarInfo(f"{set_name}/{Path(member.name).name}")
            info.size = member.size
            out.addfile(info, handle)
            ids.append(Path(member.name).stem)
            if len(ids) == count:
                break
    return ids


@pytest.fixture(scope="module")
def physionet_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 set-A stays (training data) and 40 set-B stays relabelled set-C (never read)."""
    source = SHARED_DATA / PHYSIONET
    if not source.is_dir():
        pytest.fail(f"{source} is missing: these tests build their slices from it")
    root = tmp_path_factory.mktemp("physionet")
    _copy_stays(source / "set-a.tar.gz", root / "set-a.tar.gz", "set-a", 40)
    _copy_stays(source / "set-b.tar.gz", root / "set-c.tar.gz", "set-c", 40)
    for outcomes in source.glob("Outcomes-*.txt"):
        shutil.copy(outcomes, root / outcomes.name)
    return root


def _held_out(ids: list[str], seed: int) -> np.ndarray:
    return np.array([is_test_patient(i, seed=seed, test_fraction=0.2) for i in ids])


def test_all_scores_every_row_and_counts_those_the_champion_was_fitted_on(
    physionet_slice: Path,
) -> None:
    data = load_physionet2012(physionet_slice)
    set_a = np.array([c == "set-a" for c in data.cohorts])
    held_out = _held_out([str(p) for p in data.patients], DETERIORATION_SEED)

    result = evaluate_model("deterioration", physionet_slice, cohort="all", n_bootstrap=0)

    assert result["cohort"] == "all"
    assert result["rows"] == result["n"] == 80
    assert result["rows_seen_in_training"] == int((set_a & ~held_out).sum())
    assert result["rows_held_out_in_training"] == int((set_a & held_out).sum())
    assert result["rows_never_read_in_training"] == 40
    assert result["cohorts"] == {
        "set-a": {"rows": 40, "seen_in_training": result["rows_seen_in_training"]},
        "set-c": {"rows": 40, "seen_in_training": 0},
    }
    assert result["trained_on"] == {"cohorts": ["set-a", "set-b"], "rows": 6406, "recorded": False}
    assert "optimistic" in result["note"]
    p = OnnxModel(shipped_models_dir() / "deterioration").predict_proba(data.X)
    assert result["auroc"] == pytest.approx(roc_auc_score(data.y, p), abs=1e-4)


def test_unseen_is_the_held_out_split_plus_every_source_training_never_read(
    physionet_slice: Path,
) -> None:
    data = load_physionet2012(physionet_slice)
    set_a = np.array([c == "set-a" for c in data.cohorts])
    held_out = _held_out([str(p) for p in data.patients], DETERIORATION_SEED)

    unseen = evaluate_model("deterioration", physionet_slice, cohort="unseen", n_bootstrap=0)
    default = evaluate_model("deterioration", physionet_slice, n_bootstrap=0)

    assert unseen["rows"] == int((set_a & held_out).sum()) + 40
    assert unseen["rows_seen_in_training"] == 0 and "note" not in unseen
    assert unseen["cohorts"]["set-c"] == {"rows": 40, "seen_in_training": 0}
    # the default is the held-out split, of every source, as before
    assert default["cohort"] == "held-out"
    assert default["rows"] == default["n"] == int(held_out.sum())
    assert default["rows_seen_in_training"] == 0


def test_a_recorded_training_data_decides_what_was_seen(
    physionet_slice: Path, tmp_path: Path
) -> None:
    """A champion trained on the first 10 set-C stays: set A is then never-seen data."""
    directory = tmp_path / "models"
    shutil.copytree(shipped_models_dir() / "deterioration", directory / "deterioration")
    manifest_path = directory / "deterioration" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["training_data"] = {"cohorts": ["set-c"], "rows": 10}
    manifest_path.write_text(json.dumps(manifest))
    data = load_physionet2012(physionet_slice)
    first_c = [str(p) for p, c in zip(data.patients, data.cohorts, strict=True) if c == "set-c"]
    fitted = int((~_held_out(first_c[:10], DETERIORATION_SEED)).sum())

    result = evaluate_model(
        "deterioration", physionet_slice, cohort="all", directory=directory, n_bootstrap=0
    )

    assert result["trained_on"] == {"cohorts": ["set-c"], "rows": 10, "recorded": True}
    assert result["rows_seen_in_training"] == fitted
    assert result["rows_never_read_in_training"] == 70
    assert result["cohorts"]["set-a"]["seen_in_training"] == 0


def test_readmission_rows_of_another_file_were_never_seen(
    shared_data: Path, tmp_path: Path
) -> None:
    with gzip.open(shared_data / UCI, "rt", encoding="utf-8", newline="") as handle:
        head = "".join(line for _, line in zip(range(401), handle, strict=False))
    (tmp_path / "training").mkdir()
    for path in (tmp_path / "training" / "diabetic_data.csv.gz", tmp_path / "hospital_b.csv"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "wt", encoding="utf-8", newline="") as out:  # type: ignore[operator]
            out.write(head)

    same = evaluate_model(
        "readmission", tmp_path / "training" / "diabetic_data.csv.gz", cohort="all", n_bootstrap=0
    )
    other = evaluate_model("readmission", tmp_path / "hospital_b.csv", cohort="all", n_bootstrap=0)

    patients = [str(p) for p in load_uci_diabetes(tmp_path / "hospital_b.csv").patients]
    fitted = int((~_held_out(patients, READMISSION_SEED)).sum())
    assert same["rows"] == other["rows"] == same["n"] == len(patients) > 350
    assert same["auroc"] == other["auroc"]
    assert same["rows_seen_in_training"] == fitted
    assert same["cohorts"] == {
        "diabetic_data": {"rows": same["rows"], "seen_in_training": same["rows_seen_in_training"]}
    }
    assert other["rows_seen_in_training"] == 0
    assert other["rows_never_read_in_training"] == other["rows"]
    assert other["cohorts"] == {"hospital_b": {"rows": other["rows"], "seen_in_training": 0}}


def test_cli_cohort_all_json_and_bad_cohorts(physionet_slice: Path) -> None:
    runner = CliRunner()
    data = str(physionet_slice)
    base = ["evaluate", "deterioration", "--data", data, "--bootstrap", "0"]

    result = runner.invoke(app, [*base, "--cohort", "all", "--json"])

    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert {"auroc", "auprc", "brier", "calibration_slope"} <= set(printed)
    assert printed["cohort"] == "all" and printed["rows"] == 80
    assert printed["rows_seen_in_training"] + printed["rows_held_out_in_training"] == 40
    bad = runner.invoke(app, [*base, "--cohort", "elsewhere"])
    assert bad.exit_code == 2 and "unknown cohort 'elsewhere'" in bad.stderr
    news2 = runner.invoke(app, ["evaluate", "news2", "--data", data, "--cohort", "all"])
    assert news2.exit_code == 2 and "--cohort applies to" in news2.stderr


def test_train_and_evaluate_name_the_missing_train_extra(
    physionet_slice: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("serving.cli.TRAIN_EXTRA_MODULES", ("healthos_no_such_training_lib",))
    runner = CliRunner()
    for command in ("evaluate", "train"):
        result = runner.invoke(app, [command, "deterioration", "--data", str(physionet_slice)])
        assert result.exit_code == 2
        assert f"healthos {command} needs the training libraries" in result.stderr
        assert "pip install 'healthos[train]'" in result.stderr
