"""Synthetic states with planted truth: realistic PDMP, death and registry files for demos and evaluation."""
