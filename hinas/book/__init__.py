"""The companion book, a front-end over the library: its build (papermill + jupyter-book,
:mod:`hinas.book.build`), its settings per profile, its cached runs, tables, comparisons and
glance, the committed GPU results and the paper's published numbers, and the genotype explorer.
Library code never imports this package."""
