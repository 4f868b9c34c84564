"""kNN with k chosen by cross-validation on the training split: the right k where it is known, and the
choice never sees the test split."""

from __future__ import annotations

import numpy as np

import selfsup.evaluation.protocols as protocols
from selfsup.cli import main
from selfsup.evaluation.knn import choose_k


def on_circle(angles: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def test_noisy_labels_want_many_neighbours() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 300)
    x = on_circle(np.where(y == 0, 0.0, np.pi) + rng.normal(0, 0.6, 600))  # two broad classes
    noisy = np.where(rng.random(600) < 0.3, 1 - y, y)  # 30% of the labels flipped
    k, accuracy = choose_k(x, noisy)
    assert k >= 20 and accuracy > 0.6


def test_tiny_pure_clusters_want_few_neighbours() -> None:
    rng = np.random.default_rng(0)
    centres = np.repeat(np.arange(60) * 2 * np.pi / 60, 6)  # 60 clusters of 6, classes alternating
    y = np.repeat(np.arange(60), 6) % 2
    x = on_circle(centres + rng.normal(0, 0.005, len(centres)))
    k, accuracy = choose_k(x, y)
    assert k <= 3 and accuracy > 0.95


def test_the_choice_never_sees_the_test_split(monkeypatch) -> None:
    seen = []

    def spy(train_emb, train_y, **kw):
        seen.append(np.array(train_emb))
        return choose_k(train_emb, train_y, **kw)

    monkeypatch.setattr(protocols, "choose_k", spy)
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(60, 4)), rng.normal(size=(20, 4)) + 100  # test rows stand out
    rows = protocols.run_protocols({"e": (train, test)}, np.repeat([0, 1], 30), np.repeat([0, 1], 10), ["knn"], k="cv")
    assert len(seen) == 1 and np.array_equal(seen[0], train) and (seen[0] < 50).all()
    assert rows[0]["details"]["k_by"] == "5-fold CV on the training split"


def test_evaluate_chooses_k_by_cv_by_default(iris_run, tmp_path, capsys) -> None:
    assert (
        main(["evaluate", "--encoder", str(iris_run), "--data", "builtin:iris", "--out", str(tmp_path / "eval")]) == 0
    )
    assert ", chosen by 5-fold CV on the training split)" in (tmp_path / "eval" / "summary.md").read_text()
    assert (
        main(
            [
                "evaluate",
                "--encoder",
                str(iris_run),
                "--data",
                "builtin:iris",
                "--k",
                "7",
                "--out",
                str(tmp_path / "fixed"),
            ]
        )
        == 0
    )
    assert "neighbours (k=7)" in (tmp_path / "fixed" / "summary.md").read_text()


def test_choose_k_scores_every_k_as_knn_predict_does():
    """One similarity matrix per fold gives the same CV accuracies as a kNN vote per candidate k."""
    from sklearn.model_selection import StratifiedKFold

    from selfsup.evaluation.knn import K_CANDIDATES, choose_k, knn_predict

    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 600)
    x = rng.normal(size=(600, 16)).astype(np.float32)
    x[:, 0] += y
    scores = np.zeros(len(K_CANDIDATES))
    for fit, held in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
        for i, k in enumerate(K_CANDIDATES):
            scores[i] += float((knn_predict(x[fit], y[fit], x[held], k=k) == y[held]).mean()) / 5
    k, accuracy = choose_k(x, y)
    assert k == K_CANDIDATES[int(np.argmax(scores))] and abs(accuracy - scores.max()) < 1e-9
