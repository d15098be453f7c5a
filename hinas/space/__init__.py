"""The method: the search space and the networks it makes.

Bottom layer of the package (nothing here imports the engine, the campaign or a front-end):
the seven operations (:mod:`~hinas.space.ops`), the width grid of the outer space
(:mod:`~hinas.space.grid`), the supernet's hyper-parameters (:mod:`~hinas.space.spec`,
:class:`~hinas.space.spec.SupernetConfig`), the supernet with its alpha and beta
(:mod:`~hinas.space.supernet`), genotypes and their decoding (:mod:`~hinas.space.genotype`), the
derived network (:mod:`~hinas.space.network`) with its single-file form
(:mod:`~hinas.space.network_file`: genotype, settings and weights) and the DnCNN baseline
(:mod:`~hinas.space.baselines`).
"""
