"""Seeing a run: Beam metrics under one namespace, and progress lines of local runs."""

from pipeline.observe.counters import NAMESPACE, Counters

__all__ = ["NAMESPACE", "Counters"]
