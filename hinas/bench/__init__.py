"""Benchmarks that print figures and ratios measured in one run.

:mod:`~hinas.bench.measure` (the supernet's memory and step time, Eq. 5 against Eq. 6, training
stability, gradient scope), :mod:`~hinas.bench.cpu` and :mod:`~hinas.bench.gpu` (hinas' steps
beside the released code's on one device) and :mod:`~hinas.bench.released` (running the
released code from a checkout, never vendored).
"""
