"""Ways of looking inside a policy: measurements of ablation effects and activations (``measures``), linear
probes (``probes``), dataset examples of features, entity profiles and readings on pairs (``features``),
steering directions and coefficient sweeps (``steering``), feature visualisation by optimisation
(``visualise``), bilinear layers as quadratic forms with their eigendecomposition (``bilinear``), and sparse
autoencoders (``sae``: model, checkpoint formats, splicing, metrics).

May import ``harness.heist``, ``harness.policy``, ``harness.stats`` and ``harness.errors``.
"""
