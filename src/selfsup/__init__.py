"""selfsup: self-supervised pre-training and honest evaluation, one interface for every modality."""

__version__ = "0.1.0"
