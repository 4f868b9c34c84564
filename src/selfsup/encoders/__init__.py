"""selfsup.encoders"""
