"""Training layer: the per-worker loop for both stages (run by Ray Train), evaluation and baselines.

``config``     TrainConfig, the plain-data description of one training run
``task``       FoldTask: a data set, one fold's cell types and bins, the fold's mean accessibility
``loop``       the per-worker training loop handed to ``ray.train.torch.TorchTrainer``
``evaluate``   scoring (bin, cell type) pairs; validation and test metrics beside both baselines
``runner``     building and fitting the TorchTrainer; ``python -m chromtune.train``
"""
