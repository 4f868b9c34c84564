"""selfsup.datasets"""
