"""The paper's analyses (§5.1, §6, Appendix B), one module per figure or table.

| module | paper | what it reads |
|---|---|---|
| :mod:`~maskbench.analysis.sweeps` | Fig. 1 (initial sparsity), Fig. 2 / Table 7 (blocks) | runs' ``metrics.json`` |
| :mod:`~maskbench.analysis.generalization` | Table 3 (SST2 ↔ SEM, SST2 → IMDB) | saved masks / weights |
| :mod:`~maskbench.analysis.tsne` | Fig. 4 (t-SNE of the top block's [CLS]) | saved masks / weights |
| :mod:`~maskbench.analysis.mask_similarity` | Fig. 5 (dissimilarity s of two tasks' masks) | saved masks |
| :mod:`~maskbench.analysis.connectivity` | Fig. 6 (line segments), Fig. 7 (Bézier curve) | saved masks / weights |

Every step writes its numbers (JSON or CSV) next to what it draws, atomically, with versions and settings.
"""
