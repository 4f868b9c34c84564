"""Methods: one small file each, registered by name."""
