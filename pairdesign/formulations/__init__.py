"""The explicit programs of docs/design.md section 5, apart from the math in ``information.py``."""
