"""selfsup.evaluation"""
