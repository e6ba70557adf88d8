"""One error root for the harness.

Every error the harness raises on bad input derives from :class:`HarnessError` and also from the builtin it
resembles, so ``except ValueError`` keeps working for callers who do not know the harness.  Messages say what
was wrong and how to fix it.
"""


class HarnessError(Exception):
    """Root of every error raised by the harness."""


class LevelFormatError(HarnessError, ValueError):
    """Engine state bytes are malformed, truncated or inconsistent; fix the buffer, never pass it to the engine."""


class LevelEditError(HarnessError, ValueError):
    """An edit would produce a level the engine cannot play (wall cell, overlap, outside the maze, ...)."""


class ObservationError(HarnessError, ValueError):
    """Observations have the wrong dtype or shape; pass uint8 frames shaped (N, 64, 64, 3)."""


class UnknownSiteError(HarnessError, KeyError):
    """A site name matches no activation of the model; the message lists the nearest valid names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead
        return str(self.args[0]) if self.args else ""


class ModelOutputError(HarnessError, ValueError):
    """A forward pass produced non-finite logits or values (NaN weights, an intervention that injected NaN or inf);
    the message says how many rows and under which interventions."""


class InterventionError(HarnessError, ValueError):
    """An intervention is malformed (shape, channels out of range) or never fired during a run."""


class CheckpointError(HarnessError, ValueError):
    """A checkpoint does not match the architecture (missing key, wrong shape); the message names the layer."""


class SamplingError(HarnessError, ValueError):
    """A sampling request cannot be met (bad seed range, predicate too rare for the requested n)."""


class StatisticsError(HarnessError, ValueError):
    """A statistic was given invalid input (empty sample, probability outside [0, 1], bad alpha)."""


class ClaimError(HarnessError, ValueError):
    """A claim is declared inconsistently (missing threshold, unknown metric, evidence recorded twice)."""


class SAEError(HarnessError, ValueError):
    """An SAE does not fit where it is used (its recorded site differs from the requested one, its channel count
    from the site's) or is configured inconsistently; the message names both sides."""


class ActionError(HarnessError, ValueError):
    """An action or direction name that Heist does not have; the message lists the valid ones."""


class PlantedModelError(HarnessError, ValueError):
    """A planted model or its tabled sample cannot be built as asked (a truth not given once per frame, two frames
    that cannot be told apart); the message says which."""


class EngineError(HarnessError, ValueError):
    """An engine pool was asked for what it cannot do (unknown distribution mode, pool size or level seed out of
    range, more episodes than engines, something other than a HeistLevel); the message says what it accepts."""


class RenderWorkerError(HarnessError, RuntimeError):
    """The render worker process died or stopped answering; the message carries its exit status and stderr."""


class RolloutError(HarnessError, ValueError):
    """Episodes were requested inconsistently (no levels, snapshot steps not one per level, max_steps outside
    1..1000)."""


class PPOConfigError(HarnessError, ValueError):
    """A PPO setting is inconsistent (batch not divisible into minibatches, levels outside the training range,
    an init checkpoint of another architecture, CUDA asked for where there is none)."""


class ImitationConfigError(HarnessError, ValueError):
    """An imitation setting is out of its range (a share outside [0, 1], a count below its minimum)."""


class TrainingInputError(HarnessError, ValueError):
    """Arrays given to a trainer's function do not fit together (rollout rewards, values and episode ends of
    different shapes); the message gives the shapes."""
