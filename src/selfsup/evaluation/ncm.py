"""Nearest-class-mean probe on frozen embeddings: each class is the mean of its L2-normalised training
embeddings, and a test sample takes the class whose mean is nearest in cosine (Mensink et al. 2013,
"Distance-Based Image Classification"; the NCM classifier of continual learning, e.g. iCaRL, Rebuffi et al.
2017). Nothing is tuned: no hyperparameter, no cross-validation.
"""

from __future__ import annotations

import numpy as np


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def ncm_predict(train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray) -> tuple[np.ndarray, dict]:
    """Test predictions by the nearest class mean (cosine) and the details: the number of class means.
    Ties go to the smallest label."""
    classes, index = np.unique(np.asarray(train_y), return_inverse=True)
    train = _normalize(train_emb)
    means = np.zeros((len(classes), train.shape[1]))
    np.add.at(means, index, train)
    similarity = _normalize(test_emb) @ _normalize(means).T
    return classes[similarity.argmax(axis=1)], {"class_means": len(classes), "similarity": "cosine"}
