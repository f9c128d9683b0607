"""The outside world's formats: FASTA, peak files and sample sheets, expression tables, the reference
implementation's joblib files, storage (a folder, ``s3://``, ``gs://``, ``file://``). ``chromtune.data`` builds data sets from what these readers return."""
