"""Trainers and their command lines, which rebuild the shipped fixtures: imitation (``python -m
harness.training.imitation``), PPO, SAE training and cards, and evaluation.

On top of the library: may import anything under ``harness``; nothing in the library imports it.
"""
