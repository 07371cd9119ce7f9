"""The model card states the bundled model's own figures: its settings from the ONNX metadata,
its headline figures from the report of that very file (`runtime/models/default.report.json`,
written by bench/model_report.py and naming the model by its SHA-256). A retrained or
re-exported model whose card was not brought along fails here."""

import json

from brain_tumor_edge.runtime.integrity import file_sha256
from brain_tumor_edge.runtime.model import Classifier, default_model_path
from tests.conftest import REPO

CARD = REPO / "runtime" / "models" / "MODEL_CARD.md"
REPORT = REPO / "runtime" / "models" / "default.report.json"


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def headline(report: dict) -> dict[str, str]:
    """The card's headline rows (their first cell) and the figures each must start with."""
    testing, shown = report["testing"], report["testing"]["not_flagged"]
    sets, volumes = report["slice_sets"], report["volumes"]

    def seq(folder: str, sequence: str) -> dict:
        return sets[f"../shared/data/{folder}"]["sequences"][sequence]

    def lgg(sequence: str) -> str:
        figures = seq("external/lgg", sequence)
        return (f"{figures['auroc']:.3f}; {pct(figures['tumour_slices']['missed_rate'])}; "
                f"{pct(figures['tumour_free_slices']['false_alarm_rate'])}")  # fmt: skip

    healthy = sets["../shared/data/external/healthy"]["sequences"]
    sources = sorted(name for name in healthy if "/" in name)
    elderly = volumes["../shared/data/external/elderly-volumes"]["sequences"]
    brats = [f"{seq('extra/brats', s)['auroc']:.3f}" for s in ("flair", "t1", "t1c", "t2")]
    return {
        "Kaggle `Testing` (670), accuracy": f"{pct(shown['accuracy'])} / {pct(testing['all']['accuracy'])}",
        "Kaggle `Testing`, recall": " / ".join(f"{100 * r:.1f}" for r in shown["recall"].values()) + "%",
        "Kaggle `Testing`, review": f"{pct(testing['flagged_out_of_scope'])} / "
        f"{pct(testing['healthy_sent_for_review_by_rule_out'])}",
        "`external/tumour-positive`": pct(report["external"]["missed_rate"]),
        "`external/lgg`, FLAIR": lgg("flair"),
        "`external/lgg`, contrast T1": lgg("t1c"),
        "`external/healthy`": " / ".join(
            pct(healthy[name]["tumour_free_slices"]["false_alarm_rate"]) for name in sources
        ),
        "`external/elderly-volumes`, slices": " / ".join(
            pct(elderly[s]["tumour_free_slices"]["false_alarm_rate"]) for s in ("fl", "t1")
        ),
        "`external/elderly-volumes`, series": " / ".join(
            "{healthy_volumes_no_tumour_found} of {healthy_volumes}".format(**elderly[s]["series"])
            for s in ("fl", "t1")
        ),
        "`extra/brats` validation": " / ".join(brats),
        "out-of-scope set": "{} of {}".format(
            pct(report["out_of_scope"]["flagged_or_refused"]), report["out_of_scope"]["inputs"]
        ),
    }


def card_rows() -> dict[str, str]:
    """The headline table's rows: first cell -> last cell."""
    rows = {}
    for line in CARD.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 3:
            rows[cells[0]] = cells[-1]
    return rows


def test_the_report_is_of_the_bundled_model():
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    assert report["model_sha256"] == file_sha256(default_model_path())


def test_the_cards_headline_figures_are_the_reports():
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    rows = card_rows()
    for key, expected in headline(report).items():
        assert key in rows, f"the card has no row {key!r}"
        assert rows[key].startswith(expected), (key, rows[key], expected)


def test_the_card_states_the_models_own_settings():
    model = Classifier(default_model_path())
    metadata, card = model.metadata, CARD.read_text(encoding="utf-8")
    assert f"T = {metadata.temperature:.4f}" in card
    assert f"limit ({metadata.scope_limit:.2f})" in card
    assert f"p = {metadata.rule_out_level[1]:.3f}" in card
    assert f"int8, {default_model_path().stat().st_size / 1e6:.2f} MB" in card
    trained = json.loads((REPO / "runtime" / "models" / "default.train.json").read_text(encoding="utf-8"))
    for run in _training_runs(trained):
        assert f"best: {run['best_epoch']}" in card and f"{run['epochs_run']} epochs" in card
    if "average" in trained:
        assert f"weight {trained['average']['weight']}" in card


def _training_runs(record: dict) -> list[dict]:
    """The training runs behind a record: an averaged model (bt-average) records the two it
    was made from, and either may itself be an average."""
    if "average" not in record:
        return [record]
    return [run for part in record["runs"].values() for run in _training_runs(part)]
