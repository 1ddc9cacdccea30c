"""The explicit programs of DESIGN.md section 5, apart from the math in ``information.py``."""
