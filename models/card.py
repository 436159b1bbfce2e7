"""Model cards: what a trained model is for, how it was evaluated, and where it falls short.

A :class:`ModelCard` holds the facts of one model version; :func:`render_model_card`
writes them as ``MODEL_CARD.md`` with a reliability diagram ``calibration.png`` beside it.
The sections follow Mitchell et al. 2019, "Model Cards for Model Reporting" (FAT* '19,
doi:10.1145/3287560.3287596), with calibration and the regulatory framing added.

The figure is drawn with :class:`matplotlib.figure.Figure`, whose ``savefig`` renders
through the Agg canvas without :mod:`matplotlib.pyplot`. Nothing here switches the global
backend (``matplotlib.use``), so importing this module from a notebook or a server leaves
their plotting alone, and no pyplot figure is left open.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve

from healthos_core.errors import InvalidInputError
from models.metrics import CI_METRICS, calibration_table

__all__ = ["CALIBRATION_PNG", "MODEL_CARD_MD", "ModelCard", "render_model_card"]

#: File names written by :func:`render_model_card`.
MODEL_CARD_MD: Final = "MODEL_CARD.md"
CALIBRATION_PNG: Final = "calibration.png"

_CALIBRATION_BINS: Final = 10
_LABELS: Final = {
    "auroc": "AUROC",
    "auprc": "AUPRC (average precision)",
    "brier": "Brier score",
    "calibration_slope": "Calibration slope",
    "calibration_intercept": "Calibration intercept",
}
_SHORT: Final = {
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "brier": "Brier",
    "calibration_slope": "Cal. slope",
    "calibration_intercept": "Cal. intercept",
}


@dataclass(frozen=True)
class ModelCard:
    """The facts reported on one model version's card.

    Parameters
    ----------
    name : str
        Registered model name, e.g. ``"inhospital-mortality"``.
    version : str
        Model version, e.g. ``"3"``.
    title : str
        Human-readable title, the card's heading.
    model_type : str
        Estimator and calibration, e.g.
        ``"HistGradientBoostingClassifier + sigmoid calibration"``.
    intended_use : str
        What the model is for, in one paragraph.
    intended_users : list of str
        Who should use it, e.g. ``["ICU physicians", "rapid-response nurses"]``.
    out_of_scope : list of str
        Uses the model is not meant or validated for.
    data : str
        Description of the training and evaluation data.
    data_licence : str
        Licence of the data, e.g. ``"ODC-By 1.0"``.
    data_citation : str
        How to cite the data.
    splits : dict
        Split name → description, e.g. ``{"train": {"n": 8000, "positives": 1100},
        "test": {...}, "method": "by patient, seed 20121"}``; values may be dicts or
        scalars.
    features : list of str
        Input feature names, in the order the model expects them.
    metrics : dict
        :func:`models.metrics.binary_metrics` on the test split.
    baselines : dict of str to dict
        Baseline name → its :func:`~models.metrics.binary_metrics` on the same split;
        may be empty.
    subgroups : dict
        :func:`models.metrics.subgroup_metrics` on the test split.
    known_limits : list of str
        Known limitations and failure modes.
    run_id : str or None
        Training run id (MLflow), if tracked.
    created : datetime
        When the model was created; must be timezone-aware.
    parity_max_abs_diff : float or None
        Largest absolute difference between the scikit-learn and ONNX Runtime
        probabilities on held-out rows, if checked.

    Raises
    ------
    InvalidInputError
        A :class:`ValueError`, if ``created`` is naive.
    """

    name: str
    version: str
    title: str
    model_type: str
    intended_use: str
    intended_users: list[str]
    out_of_scope: list[str]
    data: str
    data_licence: str
    data_citation: str
    splits: dict[str, Any]
    features: list[str]
    metrics: dict[str, Any]
    baselines: dict[str, dict[str, Any]]
    subgroups: dict[str, dict[str, dict[str, Any]]]
    known_limits: list[str]
    run_id: str | None
    created: datetime
    parity_max_abs_diff: float | None

    def __post_init__(self) -> None:
        if self.created.tzinfo is None or self.created.utcoffset() is None:
            raise InvalidInputError(
                "ModelCard.created must be timezone-aware, e.g. datetime.now(UTC)"
            )


def render_model_card(
    card: ModelCard, y_true: npt.ArrayLike, p: npt.ArrayLike, directory: Path
) -> Path:
    """Write ``MODEL_CARD.md`` and its reliability diagram ``calibration.png``.

    Parameters
    ----------
    card : ModelCard
        The facts to report.
    y_true : array-like of shape (n_samples,)
        Observed outcomes (0/1) of the test split the card's metrics were computed on.
    p : array-like of shape (n_samples,)
        The model's calibrated probabilities on that split, in ``[0, 1]``.
    directory : Path
        Where to write the two files; created (with parents) if missing. Existing files
        of the same names are replaced.

    Returns
    -------
    path : Path
        ``directory / "MODEL_CARD.md"``.

    Raises
    ------
    InvalidInputError
        A :class:`ValueError`: ``y_true``/``p`` are invalid (see
        :func:`models.metrics.calibration_table`), or their length differs from
        ``card.metrics["n"]``.

    Notes
    -----
    The output is deterministic: the only date written is ``card.created``, numbers are
    printed with four decimals, and rendering the same card and data twice gives
    identical files.

    Examples
    --------
    >>> render_model_card(card, y_test, p_test, Path("var/cards/3"))  # doctest: +SKIP
    PosixPath('var/cards/3/MODEL_CARD.md')
    """
    table = calibration_table(y_true, p, bins=_CALIBRATION_BINS)
    y = np.asarray(y_true, dtype=np.float64)
    prob = np.asarray(p, dtype=np.float64)
    expected = card.metrics.get("n")
    if expected is not None and int(expected) != y.shape[0]:
        raise InvalidInputError(
            f"y_true/p have {y.shape[0]} samples but card.metrics was computed on {expected}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    _plot_calibration(card, y, prob, directory / CALIBRATION_PNG)
    path = directory / MODEL_CARD_MD
    path.write_text(_markdown(card, table), encoding="utf-8")
    return path


def _plot_calibration(
    card: ModelCard, y: npt.NDArray[np.float64], p: npt.NDArray[np.float64], path: Path
) -> None:
    """Draw the reliability diagram (quantile bins) above a histogram of ``p``."""
    observed, predicted = calibration_curve(y, p, n_bins=_CALIBRATION_BINS, strategy="quantile")
    fig = Figure(figsize=(6.0, 7.0), dpi=100, layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0.0, 1.0], [0.0, 1.0], linestyle="--", color="grey", label="Perfect calibration")
    top.plot(predicted, observed, marker="o", label=f"{card.name} (quantile bins)")
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel("Observed event rate")
    top.set_title(f"Calibration: {card.name} version {card.version}")
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.hist(p, bins=50, range=(0.0, 1.0), color="tab:blue", alpha=0.8)
    bottom.set_xlabel("Predicted probability")
    bottom.set_ylabel("Count")
    # No "Software" entry: the file then depends on the data alone, not the matplotlib version.
    fig.savefig(path, format="png", metadata={"Software": None})


def _fmt(value: Any) -> str:
    """Format a metric value for a table: four decimals, ``n/a`` when missing."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}" if math.isfinite(value) else "n/a"
    return _cell(str(value))


def _cell(text: str) -> str:
    """Make ``text`` safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _interval(metrics: Mapping[str, Any], key: str) -> str:
    """Return the interval of ``key`` as ``[low, high]``, or ``n/a``."""
    bounds = metrics.get("ci", {}).get(key)
    if not bounds or bounds[0] is None or bounds[1] is None:
        return "n/a"
    return f"[{_fmt(bounds[0])}, {_fmt(bounds[1])}]"


def _level_text(metrics: Mapping[str, Any]) -> str:
    """Return e.g. ``95%`` for the metrics' interval level."""
    level = float(metrics.get("ci_level", 0.95))
    return f"{level * 100:g}%"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Return the lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _bullets(items: Sequence[str], empty: str) -> list[str]:
    """Return a Markdown bullet list, or ``empty`` when there are no items."""
    return [f"- {item}" for item in items] if items else [empty]


def _split_text(value: Any) -> str:
    """Describe one split entry: ``n=…, positives=…`` for dicts, the value otherwise."""
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    return _fmt(value)


def _markdown(card: ModelCard, calibration: Sequence[Mapping[str, Any]]) -> str:
    """Render the card's Markdown text."""
    m = card.metrics
    level = _level_text(m)
    has_ci = "ci" in m
    lines: list[str] = [f"# {card.title}", ""]

    lines += ["## Model details", ""]
    lines += [
        f"- **Name:** {card.name}",
        f"- **Version:** {card.version}",
        f"- **Model type:** {card.model_type}",
        f"- **Created:** {card.created.isoformat()}",
        f"- **Training run:** {card.run_id if card.run_id is not None else 'not tracked'}",
        "- **ONNX parity (max |scikit-learn − ONNX Runtime| probability):** "
        + (
            f"{card.parity_max_abs_diff:.2e}"
            if card.parity_max_abs_diff is not None
            else "not checked"
        ),
        f"- **Input features ({len(card.features)}):** "
        + (", ".join(f"`{f}`" for f in card.features) if card.features else "none listed"),
        "",
    ]

    lines += ["## Intended use", "", card.intended_use, ""]
    lines += ["## Intended users", "", *_bullets(card.intended_users, "Not stated."), ""]
    lines += ["## Out of scope", "", *_bullets(card.out_of_scope, "Not stated."), ""]

    lines += ["## Data", "", card.data, ""]
    lines += [f"- **Licence:** {card.data_licence}", f"- **Citation:** {card.data_citation}", ""]

    lines += ["## Splits", ""]
    lines += _bullets(
        [f"**{name}:** {_split_text(value)}" for name, value in card.splits.items()],
        "Not stated.",
    )
    lines.append("")

    lines += ["## Metrics", ""]
    lines.append(
        f"On the test split: n = {_fmt(m.get('n'))}, positives = {_fmt(m.get('positives'))}, "
        f"prevalence = {_fmt(m.get('prevalence'))}."
    )
    if has_ci:
        lines.append(
            f"Intervals are {level} percentile bootstrap intervals "
            f"({_fmt(m.get('ci_resamples'))} usable paired resamples)."
        )
    else:
        lines.append("No bootstrap intervals were computed.")
    lines.append("")
    lines += _table(
        ["Metric", "Value", f"{level} interval"],
        [[_LABELS[k], _fmt(m.get(k)), _interval(m, k)] for k in CI_METRICS],
    )
    lines += [
        "",
        "Calibration slope and intercept are from logistic recalibration, "
        "y ~ a + b·logit(p) (Cox 1958; Steyerberg, *Clinical Prediction Models*): "
        "a slope of 1 and an intercept of 0 are ideal; a slope below 1 means the "
        "predictions are too extreme.",
        "",
    ]

    lines += ["## Baselines", ""]
    if card.baselines:
        lines.append(f"Same test split and metrics; cells show the value and its {level} interval.")
        lines.append("")
        rows = [
            [_cell(name), _fmt(bm.get("n")), *(_with_interval(bm, k) for k in CI_METRICS)]
            for name, bm in [(f"**{card.name}** (this model)", m), *card.baselines.items()]
        ]
        lines += _table(["Model", "n", *(_SHORT[k] for k in CI_METRICS)], rows)
    else:
        lines.append("No baselines were evaluated.")
    lines.append("")

    lines += ["## Calibration", "", f"![calibration]({CALIBRATION_PNG})", ""]
    lines.append(
        f"Observed event rate against mean predicted probability in {_CALIBRATION_BINS} "
        "quantile bins of the test split (bins emptied by tied predictions are dropped)."
    )
    lines.append("")
    lines += _table(
        ["Bin", "n", "Mean predicted", "Observed"],
        [
            [str(i), _fmt(row["n"]), _fmt(row["mean_predicted"]), _fmt(row["observed"])]
            for i, row in enumerate(calibration, start=1)
        ],
    )
    lines.append("")

    lines += ["## Performance by subgroup", ""]
    if card.subgroups:
        lines.append("AUROC and AUPRC are n/a where a level holds one outcome class only.")
        lines.append("")
        for grouping, levels in card.subgroups.items():
            lines += [f"### {grouping}", ""]
            lines += _table(
                [
                    "Level",
                    "n",
                    "Positives",
                    "Observed rate",
                    "Mean predicted",
                    "AUROC",
                    "AUPRC",
                    "Brier",
                ],
                [
                    [
                        _cell(level),
                        _fmt(row.get("n")),
                        _fmt(row.get("positives")),
                        _fmt(row.get("observed_rate")),
                        _fmt(row.get("mean_predicted")),
                        _fmt(row.get("auroc")),
                        _fmt(row.get("auprc")),
                        _fmt(row.get("brier")),
                    ]
                    for level, row in levels.items()
                ],
            )
            lines.append("")
    else:
        lines += ["No subgroup analysis was run.", ""]

    lines += ["## Known limits", "", *_bullets(card.known_limits, "None recorded."), ""]

    lines += ["## Regulatory framing", "", *_REGULATORY, ""]
    return "\n".join(lines)


def _with_interval(metrics: Mapping[str, Any], key: str) -> str:
    """Return ``value [low, high]`` (or just the value when there is no interval)."""
    value = _fmt(metrics.get(key))
    interval = _interval(metrics, key)
    return value if interval == "n/a" else f"{value} {interval}"


_REGULATORY: Final = (
    "This model is advisory clinical decision support. It is designed to meet the four "
    "criteria for non-device clinical decision support software of section 520(o)(1)(E) "
    "of the FD&C Act, as explained in the FDA guidance *Clinical Decision Support "
    "Software* (September 2022):",
    "",
    "1. It does not acquire, process or analyse a medical image, a signal from an in vitro "
    "diagnostic device, or a pattern or signal from a signal acquisition system; it uses "
    "medical information already recorded in the patient record.",
    "2. It displays, analyses or prints medical information about a patient (the recorded "
    "values that are its inputs).",
    "3. It supports or provides recommendations to a health care professional about the "
    "prevention, diagnosis or treatment of a disease or condition; it does not replace "
    "their judgement.",
    "4. It lets the health care professional independently review the basis for each "
    "recommendation, so that they need not rely primarily on it: each suggestion shows its "
    "inputs, their contributions and its evidence, alongside this card's performance and "
    "known limits.",
    "",
    "It never changes the record: suggestions are shown to the professional, who decides "
    "what, if anything, to do or document. This is the project's own framing, not an FDA "
    "determination; a deployment that, for example, raises time-critical alarms or feeds "
    "on device signals may fall outside these criteria and needs its own assessment.",
)
