"""Loaded models in the API: ``/ready``, ``GET /api/v1/models`` and reloading a new champion.

Tests taking ``client`` run on SQLite and on PostgreSQL (the ``engine`` fixture). The
models are tiny real ONNX models written to a temporary models directory, which the app
reads through settings ``models_dir``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from healthos_core.settings import Settings
from serving.main import create_app
from tests.models.model_fixtures import write_model_dir

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKENS = {
    "tok-clinician-0001": "clinician",
    "tok-nurse-0001": "nurse",
    "tok-finance-0001": "finance",
    "tok-operations-01": "operations",
    "tok-leadership-01": "leadership",
    "tok-admin-0001": "admin",
    "tok-datasci-0001": "data_scientist",
}
PROBLEM = "application/problem+json"


def auth(role: str) -> dict[str, str]:
    token = next(t for t, r in TOKENS.items() if r == role)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "models"
    write_model_dir(directory, "deterioration", version="1")
    write_model_dir(directory, "readmission", version="4", n_features=3, seed=1)
    return directory


@pytest.fixture
def app(engine: Engine, models_dir: Path) -> FastAPI:
    settings = Settings(environment="test", api_tokens=TOKENS, models_dir=models_dir)  # type: ignore[arg-type]
    return create_app(settings, engine=engine)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


def versions(client: TestClient) -> dict[str, str]:
    response = client.get("/ready")
    assert response.status_code == 200
    return {m["name"]: m["version"] for m in response.json()["models"]}


def test_ready_lists_the_loaded_models(client: TestClient) -> None:
    body = client.get("/ready").json()
    assert body["status"] == "ready"
    assert body["models"] == [
        {"name": "deterioration", "version": "1"},
        {"name": "readmission", "version": "4"},
    ]


@pytest.mark.parametrize("role", sorted(set(TOKENS.values())))
def test_any_role_lists_models(client: TestClient, role: str) -> None:
    response = client.get("/api/v1/models", headers=auth(role))
    assert response.status_code == 200
    body = response.json()
    assert [m["name"] for m in body["models"]] == ["deterioration", "readmission"]
    assert body["errors"] == {}


def test_model_listing_comes_from_the_manifest(client: TestClient, models_dir: Path) -> None:
    body = client.get("/api/v1/models", headers=auth("clinician")).json()
    model = body["models"][0]
    manifest = json.loads((models_dir / "deterioration" / "manifest.json").read_text())
    assert model["name"] == "deterioration"
    assert model["version"] == "1"
    assert model["run_id"] == manifest["run_id"] == "run-deterioration-1"
    assert model["trained_at"] == "2025-01-01T00:00:00Z"
    assert model["registered_model"] == "healthos-deterioration"
    assert model["n_features"] == 6
    assert model["n_train"] == 200
    metrics = model["metrics"]
    for key in ("n", "positives", "auroc", "auprc", "brier", "calibration_slope"):
        assert metrics[key] == manifest["metrics"][key]
    assert metrics["ci"] == {"auroc": [0.6, 0.9]}
    assert metrics["ci_resamples"] == 50  # further manifest metrics pass through


def test_reload_picks_up_a_new_champion_without_restart(
    client: TestClient, models_dir: Path
) -> None:
    assert versions(client) == {"deterioration": "1", "readmission": "4"}
    # `healthos train` promotes a new champion: files replaced, manifest written last.
    write_model_dir(models_dir, "deterioration", version="2", seed=5, run_id="run-new")
    write_model_dir(models_dir, "sepsis", version="1", n_features=2)
    assert versions(client) == {"deterioration": "1", "readmission": "4"}  # not yet

    response = client.post("/api/v1/models/reload", headers=auth("admin"))
    assert response.status_code == 200
    listed = {m["name"]: (m["version"], m["run_id"]) for m in response.json()["models"]}
    assert listed == {
        "deterioration": ("2", "run-new"),
        "readmission": ("4", "run-readmission-4"),
        "sepsis": ("1", "run-sepsis-1"),
    }
    assert versions(client) == {"deterioration": "2", "readmission": "4", "sepsis": "1"}
    listing = client.get("/api/v1/models", headers=auth("nurse")).json()["models"]
    assert [(m["name"], m["version"]) for m in listing] == [
        ("deterioration", "2"),
        ("readmission", "4"),
        ("sepsis", "1"),
    ]


def test_reload_unloads_a_removed_model(client: TestClient, models_dir: Path) -> None:
    for path in (models_dir / "readmission").iterdir():
        path.unlink()
    (models_dir / "readmission").rmdir()
    body = client.post("/api/v1/models/reload", headers=auth("admin")).json()
    assert [m["name"] for m in body["models"]] == ["deterioration"]
    assert versions(client) == {"deterioration": "1"}


def test_a_broken_champion_is_reported_and_the_old_version_keeps_serving(
    client: TestClient, models_dir: Path
) -> None:
    (models_dir / "deterioration" / "manifest.json").write_text("{not json", encoding="utf-8")
    body = client.post("/api/v1/models/reload", headers=auth("admin")).json()
    assert [(m["name"], m["version"]) for m in body["models"]] == [
        ("deterioration", "1"),
        ("readmission", "4"),
    ]
    assert list(body["errors"]) == ["deterioration"]
    assert "cannot be loaded" in body["errors"]["deterioration"]
    assert versions(client) == {"deterioration": "1", "readmission": "4"}


@pytest.mark.parametrize("role", ["clinician", "nurse", "finance", "leadership", "data_scientist"])
def test_reload_is_for_admins_only(client: TestClient, role: str) -> None:
    response = client.post("/api/v1/models/reload", headers=auth(role))
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["code"] == "forbidden"
    assert body["instance"] == "/api/v1/models/reload"
    assert "admin" in body["detail"]


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v1/models"), ("POST", "/api/v1/models/reload")]
)
def test_models_need_a_token(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["code"] == "unauthorized"
    bad = client.request(method, path, headers={"Authorization": "Bearer not-a-token-at-all"})
    assert bad.status_code == 401


def test_an_empty_models_directory_serves_no_models(engine: Engine, tmp_path: Path) -> None:
    settings = Settings(environment="test", api_tokens=TOKENS, models_dir=tmp_path / "none")  # type: ignore[arg-type]
    with TestClient(create_app(settings, engine=engine)) as client:
        assert client.get("/ready").json()["models"] == []
        body = client.get("/api/v1/models", headers=auth("admin")).json()
        assert body == {"models": [], "errors": {}}


def test_models_route_before_start_up_is_a_problem(engine: Engine, tmp_path: Path) -> None:
    settings = Settings(environment="test", api_tokens=TOKENS, models_dir=tmp_path)  # type: ignore[arg-type]
    client = TestClient(create_app(settings, engine=engine))  # no `with`: no lifespan
    response = client.get("/api/v1/models", headers=auth("admin"))
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM


def test_serving_never_imports_training_libraries(models_dir: Path, tmp_path: Path) -> None:
    """Serving scores with onnxruntime only: importing and starting it loads no sklearn."""
    script = textwrap.dedent(
        f"""
        import json, sys
        from pathlib import Path
        from fastapi.testclient import TestClient
        from healthos_core.settings import Settings
        from serving.main import create_app

        settings = Settings(
            environment="test",
            database_url="sqlite:///{(tmp_path / "probe.db").as_posix()}",
            models_dir=Path({str(models_dir)!r}),
        )
        with TestClient(create_app(settings)) as client:
            ready = client.get("/ready").json()
            listing = client.get(
                "/api/v1/models", headers={{"Authorization": "Bearer dev-clinician"}}
            ).json()
        loaded = [m for m in ("sklearn", "skl2onnx", "mlflow") if m in sys.modules]
        print(json.dumps({{"loaded": loaded, "ready": ready, "n": len(listing["models"])}}))
        """
    )
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    env.pop("HEALTHOS_MODELS_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    assert [m["name"] for m in out["ready"]["models"]] == ["deterioration", "readmission"]
    assert out["n"] == 2
