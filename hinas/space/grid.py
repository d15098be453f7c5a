"""The (layer, level) grid of the outer search space, shared by the supernet and decoding.

A *source* is a node that feeds the next layer: the stem (layer -1), then every cell that is
not in the last layer; sources are beta's rows. This module depends on nothing else in hinas,
so :mod:`hinas.space.genotype` (decoding) and :mod:`hinas.space.supernet` (search) both use it without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

# Moves out of a source at level h, as beta's columns: to h-1, to h, to h+1.
MOVES = (-1, 0, 1)
MOVE_NAMES = ("narrower", "same", "wider")


@dataclass(frozen=True)
class Source:
    """A node that feeds the next layer: the stem (layer -1) or a cell at (layer, level)."""

    index: int  # row of beta
    layer: int
    level: int

    @property
    def name(self) -> str:
        return "stem" if self.layer < 0 else f"cell(l{self.layer},h{self.level})"


def grid_sources(layers: int, levels: int) -> list[Source]:
    """Sources in beta's row order: the stem, then each non-final layer's cells by level."""
    sources = [Source(0, -1, 0)]
    for layer in range(layers - 1):
        for level in range(min(layer + 2, levels)):
            sources.append(Source(len(sources), layer, level))
    return sources
