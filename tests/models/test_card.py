"""Tests of the model card and its reliability diagram."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from healthos_core.errors import InvalidInputError
from models.card import ModelCard, render_model_card
from models.metrics import CI_METRICS, binary_metrics, calibration_table, subgroup_metrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADINGS = (
    "## Model details",
    "## Intended use",
    "## Intended users",
    "## Out of scope",
    "## Data",
    "## Splits",
    "## Metrics",
    "## Baselines",
    "## Calibration",
    "## Performance by subgroup",
    "## Known limits",
    "## Regulatory framing",
)


@pytest.fixture(scope="module")
def evaluation() -> dict[str, Any]:
    rng = np.random.default_rng(20121)
    n = 600
    p = rng.beta(1.5, 6.0, n)
    y = (rng.uniform(size=n) < p).astype(int)
    # Level "0-17" gets two all-negative rows: a single class, so AUROC is n/a there.
    age = np.where(np.arange(n) % 2 == 0, "18-64", "65+").astype(object)
    age[:2] = "0-17"
    y[:2] = 0
    groups = {"sex": ["F" if i % 3 else "M" for i in range(n)], "age_band": list(age)}
    baseline_p = np.clip(p + rng.normal(0, 0.1, n), 0, 1)
    return {
        "y": y,
        "p": p,
        "metrics": binary_metrics(y, p, n_bootstrap=100, seed=1),
        "baseline": binary_metrics(y, baseline_p, n_bootstrap=50, seed=1),
        "subgroups": subgroup_metrics(y, p, groups),
    }


def make_card(evaluation: dict[str, Any], **changes: Any) -> ModelCard:
    card = ModelCard(
        name="inhospital-mortality",
        version="3",
        title="In-hospital mortality after 24 h in the ICU",
        model_type="HistGradientBoostingClassifier + sigmoid calibration",
        intended_use="Flag ICU stays at high risk of in-hospital death for senior review.",
        intended_users=["ICU physicians", "Critical-care outreach nurses"],
        out_of_scope=["Paediatric patients", "Triage in the emergency department"],
        data="PhysioNet/CinC Challenge 2012: 12,000 adult ICU stays, first 48 h.",
        data_licence="Open Data Commons Attribution License v1.0",
        data_citation="Silva I, et al. Computing in Cardiology 2012;39:245-248.",
        splits={
            "train": {"n": 9600, "positives": 1330},
            "test": {"n": 600, "positives": evaluation["metrics"]["positives"]},
            "method": "by patient, seed 20121",
        },
        features=["age", "worst_news2", "lactate_max"],
        metrics=evaluation["metrics"],
        baselines={"NEWS2 | worst 24 h": evaluation["baseline"]},
        subgroups=evaluation["subgroups"],
        known_limits=["Single-centre-style research data; not validated prospectively."],
        run_id="0123456789abcdef",
        created=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        parity_max_abs_diff=2.5e-7,
    )
    return dataclasses.replace(card, **changes)


@pytest.fixture(scope="module")
def rendered(
    evaluation: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    directory = tmp_path_factory.mktemp("card") / "inhospital-mortality" / "3"
    path = render_model_card(make_card(evaluation), evaluation["y"], evaluation["p"], directory)
    return path, path.read_text(encoding="utf-8")


def test_writes_markdown_and_png_into_a_new_directory(rendered: tuple[Path, str]) -> None:
    path, _ = rendered
    assert path.name == "MODEL_CARD.md"
    assert path.parent.name == "3" and path.is_file()
    png = (path.parent / "calibration.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    assert len(png) > 5_000


def test_every_section_heading_is_present_in_order(rendered: tuple[Path, str]) -> None:
    _, text = rendered
    lines = text.splitlines()
    assert lines[0] == "# In-hospital mortality after 24 h in the ICU"
    positions = [lines.index(heading) for heading in HEADINGS]
    assert positions == sorted(positions)


def test_model_details_and_data(rendered: tuple[Path, str]) -> None:
    _, text = rendered
    for fragment in (
        "- **Name:** inhospital-mortality",
        "- **Version:** 3",
        "HistGradientBoostingClassifier + sigmoid calibration",
        "- **Created:** 2026-01-02T03:04:05+00:00",
        "- **Training run:** 0123456789abcdef",
        "2.50e-07",
        "`worst_news2`",
        "- ICU physicians",
        "- Paediatric patients",
        "- **Licence:** Open Data Commons Attribution License v1.0",
        "- **Citation:** Silva I, et al.",
        "- **train:** n=9600, positives=1330",
        "- **method:** by patient, seed 20121",
        "- Single-centre-style research data",
    ):
        assert fragment in text, fragment


def test_metrics_table_shows_values_and_intervals(
    rendered: tuple[Path, str], evaluation: dict[str, Any]
) -> None:
    _, text = rendered
    m = evaluation["metrics"]
    assert "| Metric | Value | 95% interval |" in text
    assert "95% percentile bootstrap intervals (100 usable paired resamples)" in text
    labels = {"auroc": "AUROC", "brier": "Brier score", "calibration_slope": "Calibration slope"}
    for key, label in labels.items():
        low, high = m["ci"][key]
        assert f"| {label} | {m[key]:.4f} | [{low:.4f}, {high:.4f}] |" in text
    assert f"n = 600, positives = {m['positives']}, prevalence = {m['prevalence']:.4f}" in text


def test_baselines_table_has_the_model_and_each_baseline(
    rendered: tuple[Path, str], evaluation: dict[str, Any]
) -> None:
    _, text = rendered
    b = evaluation["baseline"]
    low, high = b["ci"]["auroc"]
    assert "| Model | n | AUROC | AUPRC | Brier | Cal. slope | Cal. intercept |" in text
    assert "| **inhospital-mortality** (this model) | 600 |" in text
    # The pipe in the baseline's name is escaped so the table keeps its columns.
    assert f"| NEWS2 \\| worst 24 h | 600 | {b['auroc']:.4f} [{low:.4f}, {high:.4f}] |" in text


def test_calibration_section_embeds_the_figure_and_table(
    rendered: tuple[Path, str], evaluation: dict[str, Any]
) -> None:
    _, text = rendered
    assert "![calibration](calibration.png)" in text
    rows = calibration_table(evaluation["y"], evaluation["p"])
    first = rows[0]
    expected = f"| 1 | {first['n']} | {first['mean_predicted']:.4f} | {first['observed']:.4f} |"
    assert expected in text
    assert f"| {len(rows)} | " in text


def test_one_table_per_grouping_with_every_level(rendered: tuple[Path, str]) -> None:
    _, text = rendered
    assert "### sex" in text and "### age_band" in text
    assert text.index("### sex") < text.index("### age_band")
    for level in ("F", "M", "0-17", "18-64", "65+"):
        assert f"\n| {level} | " in text, level
    # The single-class level shows n/a for AUROC and AUPRC.
    assert "| 0-17 | 2 | 0 | 0.0000 |" in text
    row = next(line for line in text.splitlines() if line.startswith("| 0-17 |"))
    assert row.count("n/a") == 2


def test_regulatory_framing_names_the_fda_guidance_and_its_criteria(
    rendered: tuple[Path, str],
) -> None:
    _, text = rendered
    section = text[text.index("## Regulatory framing") :]
    assert "*Clinical Decision Support Software* (September 2022)" in section
    assert "advisory clinical decision support" in section
    assert "520(o)(1)(E)" in section
    for number, fragment in (
        (1, "does not acquire, process or analyse a medical image"),
        (2, "displays, analyses or prints medical information"),
        (3, "recommendations to a health care professional"),
        (4, "independently review the basis"),
    ):
        assert f"\n{number}. " in section and fragment in section
    assert "inputs, their contributions and its evidence" in section
    assert "It never changes the record" in section


def test_output_is_deterministic(evaluation: dict[str, Any], tmp_path: Path) -> None:
    card = make_card(evaluation)
    first = render_model_card(card, evaluation["y"], evaluation["p"], tmp_path / "a")
    second = render_model_card(card, evaluation["y"], evaluation["p"], tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    assert (tmp_path / "a" / "calibration.png").read_bytes() == (
        tmp_path / "b" / "calibration.png"
    ).read_bytes()


def test_card_without_intervals_baselines_or_subgroups(
    evaluation: dict[str, Any], tmp_path: Path
) -> None:
    bare = binary_metrics(evaluation["y"], evaluation["p"], n_bootstrap=0)
    card = make_card(
        evaluation,
        metrics=bare,
        baselines={},
        subgroups={},
        run_id=None,
        parity_max_abs_diff=None,
    )
    text = render_model_card(card, evaluation["y"], evaluation["p"], tmp_path).read_text()
    assert "No bootstrap intervals were computed." in text
    assert f"| AUROC | {bare['auroc']:.4f} | n/a |" in text
    assert "No baselines were evaluated." in text
    assert "No subgroup analysis was run." in text
    assert "- **Training run:** not tracked" in text
    assert "not checked" in text
    for heading in HEADINGS:
        assert f"\n{heading}\n" in text


def test_naive_created_is_rejected(evaluation: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="created must be timezone-aware") as info:
        make_card(evaluation, created=datetime(2026, 1, 2))
    assert isinstance(info.value, InvalidInputError)


def test_data_must_match_the_card_metrics(evaluation: dict[str, Any], tmp_path: Path) -> None:
    card = make_card(evaluation)
    with pytest.raises(ValueError, match=r"have 599 samples but card\.metrics was computed on 600"):
        render_model_card(card, evaluation["y"][1:], evaluation["p"][1:], tmp_path)
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        render_model_card(card, evaluation["y"], evaluation["p"] + 1.0, tmp_path)
    assert not (tmp_path / "MODEL_CARD.md").exists()


def test_every_ci_metric_has_a_row(rendered: tuple[Path, str]) -> None:
    _, text = rendered
    metrics_section = text[text.index("## Metrics") : text.index("## Baselines")]
    table_rows = [line for line in metrics_section.splitlines() if line.startswith("| ")]
    assert len(table_rows) == 1 + len(CI_METRICS)
