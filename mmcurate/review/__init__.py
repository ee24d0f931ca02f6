"""The review stage: a local web page for one round, and batch files for outside annotators."""
