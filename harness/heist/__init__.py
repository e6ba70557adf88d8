"""The game: Heist levels as exact engine states, edits, rendering, the shortest-path oracle, sampling and
hypothesis strategies.

Owns everything about procgen and nothing about neural networks: no module here imports torch.  May import
``harness.errors`` only; every other subpackage builds on this one.
"""
