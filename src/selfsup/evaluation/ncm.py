"""Nearest-class-mean probe on frozen embeddings: each class is the mean of its L2-normalised training
embeddings, and a test sample takes the class whose mean is nearest in cosine (Mensink et al. 2013,
"Distance-Based Image Classification"; the NCM classifier of continual learning, e.g. iCaRL, Rebuffi et al.
2017). Nothing is tuned: no hyperparameter, no cross-validation.
"""

from __future__ import annotations

import numpy as np

from selfsup.evaluation.fewshot import normalise


def ncm_predict(train_emb: np.ndarray, train_y: np.ndarray, test_emb: np.ndarray) -> tuple[np.ndarray, dict]:
    """Test predictions by the nearest class mean (cosine) and the details: the number of class means.
    Ties go to the smallest label."""
    classes, index = np.unique(np.asarray(train_y), return_inverse=True)
    train = normalise(np.asarray(train_emb).reshape(len(train_emb), -1))
    means = np.zeros((len(classes), train.shape[1]))
    np.add.at(means, index, train)
    similarity = normalise(np.asarray(test_emb).reshape(len(test_emb), -1)) @ normalise(means).T
    return classes[similarity.argmax(axis=1)], {"class_means": len(classes), "similarity": "cosine"}
