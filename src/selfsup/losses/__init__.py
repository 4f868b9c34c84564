"""selfsup.losses"""
