"""File formats: how pairdesign's data is read from and written to disk."""
