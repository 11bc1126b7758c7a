"""Readers that turn source files into canonical tables plus rejects."""
