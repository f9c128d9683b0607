"""What a trained model reads in the sequence: attribution, motif discovery and matching, activity x TF expression.

The ``chromtune interpret`` command lives in :mod:`chromtune.interpret.command`.
"""
