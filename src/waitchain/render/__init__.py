"""Renderers: one module per output format, each a function Diagnosis → text."""
