"""The outside world's formats: FASTA, peak files and sample sheets, expression tables, motif files
(MEME, JASPAR), VCF, the reference implementation's joblib files, and storage (a folder, ``s3://``,
``gs://``, ``file://``). ``chromtune.data`` builds data sets from what these readers return."""
