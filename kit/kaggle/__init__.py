"""Kaggle, the service: the kaggle CLI, kernels, the leaderboard.

client.py (the kaggle CLI by subprocess: download, submit, push; its errors translated),
kernel.py (a Kaggle kernel folder: one self-contained script + metadata),
leaderboard.py (a competition's runs as a table, joined with Kaggle's scores).
Imports: anything in the core; nothing in kit imports this wing but kit.cli and scripts.
"""
