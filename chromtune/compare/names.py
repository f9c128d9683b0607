"""Names the command line and the comparison share; imports nothing heavy, so ``--help`` answers at once."""

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
METRICS = ("auprc", "auroc", "auprc_mean_per_cell", "auroc_mean_per_cell", "auprc_specific")
METRIC_LABELS = {"auprc": "test AUPRC (pooled)", "auroc": "test AUROC (pooled)",
                 "auprc_mean_per_cell": "test AUPRC (mean per cell type)",
                 "auroc_mean_per_cell": "test AUROC (mean per cell type)",
                 "auprc_specific": "test AUPRC (cell-type-specific bins: open in < 30 % of training cell types)"}
BASELINES = {"mean_baseline": "mean baseline", "weighted_mean_baseline": "RNA-weighted mean baseline"}
ROPE = 0.01  # default region of practical equivalence, in AUPRC
ALPHA = 0.05
