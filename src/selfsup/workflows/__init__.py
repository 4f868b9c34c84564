"""Workflows: the jobs a user runs (pre-train, self-train, bench, quickstart, export and embed), on top of every
other package; nothing below imports them."""
