"""selfsup.modalities"""
