"""Drawings and plots written as PNG files (matplotlib, Agg renderer)."""
