"""MLP probe: a one-hidden-layer perceptron on frozen, standardised embeddings.

scikit-learn's ``MLPClassifier`` (hidden width 256, ReLU, Adam, L2 1e-4) with early stopping on a
10% validation split carved from the training split, so the test split is used once, for the
reported accuracy.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

HIDDEN = 256


def mlp_probe(
    train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, dict]:
    """Fit on the training split (early stopping on 10% of it when every class has 10+ samples)."""
    train_emb = np.asarray(train_emb, dtype=np.float64).reshape(len(train_emb), -1)
    test_emb = np.asarray(test_emb, dtype=np.float64).reshape(len(test_emb), -1)
    counts = np.unique(np.asarray(train_y), return_counts=True)[1]
    early = bool(counts.min() >= 10)  # a stratified 10% validation split needs every class in it
    model = make_pipeline(
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=(HIDDEN,),
            alpha=1e-4,
            max_iter=300,
            early_stopping=early,
            validation_fraction=0.1,
            n_iter_no_change=10,
            random_state=seed,
        ),
    )
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(train_emb, train_y)
    net = model[-1]
    return model.predict(test_emb), {"hidden": HIDDEN, "early_stopping": early, "epochs": int(net.n_iter_)}
