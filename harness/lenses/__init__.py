"""Ways of looking inside a policy: measurements of ablation effects and activations, linear probes, dataset
examples of features, and sparse autoencoders (model, checkpoint formats, splicing, metrics).

May import ``harness.heist``, ``harness.policy``, ``harness.stats`` and ``harness.errors``.
"""
