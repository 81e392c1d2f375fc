"""Retraining a DARTS-space genotype from scratch: the scorer of the DARTS space.

There is no table to look a DARTS genotype up in: its figure is the test error of the
evaluation network trained from scratch (quark0/darts cnn/train.py). `python -m
benchmark.retrain --help`. Modules: profiles (the protocol values and their validation),
data (test sets, CIFAR-100 archive reader, cutout), train (the loop), job (one retraining
run: folder, lock, resume, failure record), cli, select (`python -m benchmark.retrain select`:
the DARTS paper's selection protocol), scorer (the registry entry).
"""
