"""Error-sheet captions: one wording rule for every task (the course's Korean when the class
or label names are Korean, English otherwise), and what the sheet is sorted by shown: the
probability of the actual class (lowest first: the highest loss) in the caption and in
errors.csv, beside the probability of the predicted class."""

from __future__ import annotations

import csv

import numpy as np

from cnncli.inference.misclassified import (
    caption,
    multilabel_caption,
    rows,
    write_errors_csv,
    wrong_key,
)


def test_multilabel_captions_speak_the_label_names_language():
    assert multilabel_caption(1, ["big", "prime"], [], "a/b.png", 2, ["big", "prime", "odd"]) == (
        "actual: big, prime //  predicted: (no label)\n#1 · 2 wrong · b.png"
    )
    assert multilabel_caption(3, ["대리석"], ["벽돌"], "x.png", 2, ["대리석", "벽돌"]) == (
        "실제 : 대리석 // 예측 : 벽돌\n#3 · 2 wrong · x.png"
    )
    # no label on either side, Korean names: the Korean "(없음)"
    assert multilabel_caption(1, [], [], "x.png", 0, ["대리석"]).startswith(
        "실제 : (없음) // 예측 : (없음)"
    )


def _ranked():
    probs = np.array([[0.99, 0.01], [0.08, 0.92], [0.0, 1.0], [0.34, 0.66], [0.9, 0.1]])
    labels = np.array([1, 0, 0, 0, 0])
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != labels)
    names = ["circle", "square"]
    table = (labels, pred, probs, [f"d/{i}.png" for i in range(5)], names)
    return rows(
        wrong,
        *table,
        key=lambda r: wrong_key(probs[r.index], r.actual_index, r.predicted_index, r.index),
    )


def test_the_caption_shows_what_the_sheet_is_sorted_by():
    ranked = _ranked()
    lines = [caption(k, m, ["circle", "square"]).splitlines() for k, m in enumerate(ranked, 1)]
    assert lines[0] == [
        "actual: circle //  predicted: square",
        "#1 · p(actual)=0.00 · p=1.00",
        "2.png",
    ]
    shown = [float(line[1].split("p(actual)=")[1].split(" ")[0]) for line in lines]
    assert shown == sorted(shown)  # 0.00, 0.01, 0.08, 0.34: the order is readable
    korean = caption(1, ranked[0], ["대리석", "벽돌"]).splitlines()[1]
    assert korean.startswith("#1 · p(실제)=0.00")


def test_errors_csv_has_the_actual_class_probability_in_order(tmp_path):
    write_errors_csv(_ranked(), tmp_path / "e.csv")
    with open(tmp_path / "e.csv", encoding="utf-8") as f:
        listed = list(csv.DictReader(f))
    assert list(listed[0]) == ["path", "actual", "predicted", "probability", "actual_probability"]
    p_actual = [float(r["actual_probability"]) for r in listed]
    assert p_actual == sorted(p_actual) == [0.0, 0.01, 0.08, 0.34]
    assert [float(r["probability"]) for r in listed] == [1.0, 0.99, 0.92, 0.66]
