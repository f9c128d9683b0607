"""What a trained model reads in the sequence, and how TF expression drives it.

    attribution   gradient x input (integrated) contribution scores, cell type by cell type
    discovery     cell-type-specific bins, TF-MoDISco, patterns back to loci
    motif_names   what real databases' motif names say: each motif's TFs, and which are Tn5/DNase bias motifs
    motif_match   the demo's planted motifs, Tomtom matching, best TF match beside bias (files: io.motifs)
    activity      motif activity per cell type and its correlation with TF expression
    embedding     t-SNE of cell types by predicted accessibility and by expression
    pipeline      the ``chromtune interpret`` pipeline over these steps
"""
