"""From run records to results: lr selection, aggregation, ensembles, test evaluation, tables, figures, paper
numbers, the run log and the front page."""
