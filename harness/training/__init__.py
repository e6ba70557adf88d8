"""Trainers and their command lines, which rebuild the shipped fixtures: imitation (``python -m
harness.training.imitation``), PPO (``ppo``, with its environment-free pieces in ``ppo_pieces``), SAE training
and cards (``sae``, with ``sae_data`` and ``sae_card``), distillation of a bilinear head from a CustomCNN on cached
conv features (``distill``) and evaluation (``evaluate``); ``flags`` builds a command
line from a config dataclass and ``progress`` prints the progress lines.

On top of the library: may import anything under ``harness``; nothing in the library imports it.
"""
