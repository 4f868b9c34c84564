"""selfsup.training"""
