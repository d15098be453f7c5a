"""Evaluation: image metrics, the scoring protocols, the protocol ladder and paired statistics.

:mod:`~hinas.eval.metrics` (PSNR and SSIM as the benchmarks compute them, the search's
selection score), :mod:`~hinas.eval.evaluation` (a restorer scored on a test set under a named
protocol), :mod:`~hinas.eval.protocol_ladder` (how far each protocol step moves a score) and
:mod:`~hinas.eval.stats` (paired comparisons over the same images).
"""
