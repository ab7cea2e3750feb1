"""Measurements quoted in the README: `refresh` is `make bench`; the others time one stage."""
