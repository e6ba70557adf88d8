"""The shipped agent's training stages, rebuilt from git history into a local folder, each file checked against the
sha256 its card states.

``fixtures/agents/customcnn_bc/card.md`` trains the agent in ten stages.  Stages 1-6 and 8 were each shipped in
their time, so their weights are in git history, and so are the conv3a and conv4a SAEs retrained on each by the
SAE card commands (the SAE cards of those commits name the policy's sha256, which is checked too).  Stage 10 is the
shipped agent, in the tree with its SAEs.  Stages 7 and 9 were never committed: they are reported as missing with
their rebuild command, and checked against their stated sha256 when a rebuilt file is put in the folder (a rebuild
may differ in its last digits: CPU thread scheduling changes them, the card says); SAEs put beside a rebuilt stage
(``stageN.sae-conv3a.pt``, trained on it by the SAE card commands) are listed with their sha256.

    python -m harness.claims.series stages --out checkpoints/customcnn_bc

writes ``stage1.pt`` ... ``stage10.pt`` with ``stageN.sae-conv3a.pt`` and ``stageN.sae-conv4a.pt`` beside each, and
``stages.json`` saying where each came from, which sha256 it was checked against, and what is missing.
"""

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ClaimError

__all__ = ["STAGES", "Stage", "rebuild_stages"]

CARD_DIR = "fixtures/agents/customcnn_bc"
OLD_POLICY = "fixtures/agents/customcnn_bc.pt"  # where the agent lived before the one-folder-per-model layout
SITES = ("conv3a", "conv4a")
JSON_SHA = r'"sha256": "([0-9a-f]{64})"'


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One training stage: where its policy and SAEs are (``commit`` None: the working tree; ``policy`` None: not
    kept anywhere), and where its sha256 is stated (a file of the tree and a pattern whose group is the hash)."""

    number: int
    commit: str | None
    policy: str | None
    sha256_in: tuple[str, str]
    saes: tuple[tuple[str, str, str], ...] = ()
    """``(site, checkpoint, card)`` paths at ``sae_commit``; the card states both sha256 prefixes."""
    sae_commit: str | None = None
    rebuild: str = ""

    @property
    def label(self) -> str:
        return f"stage{self.number}"


def _old_saes() -> tuple[tuple[str, str, str], ...]:
    return tuple((site, f"fixtures/saes/{site}.pt", f"fixtures/saes/{site}.card.md") for site in SITES)


def _in_git(number: int, commit: str, sae_commit: str) -> Stage:
    return Stage(number=number, commit=commit, policy=OLD_POLICY, saes=_old_saes(), sae_commit=sae_commit,
                 sha256_in=(f"{CARD_DIR}/stages/stage{number}.eval.json", JSON_SHA))  # fmt: skip


IMITATION = "python -m harness.training.imitation"
LATE_FLAGS = "--part-played 0.5 --multi-lock-share 0.5 --lr 3e-4 --expert-frames 150000 --iterations 3 " \
             "--time-budget-minutes 90"  # fmt: skip
SAE_TRAIN = "python -m harness.training.sae train --frames 8000 --steps 4000 --seed 0 --topk 16"  # the SAE cards'


def _rebuild(number: int, before_commit: str, seed: int, note: str) -> str:
    """The commands that retrain a stage never committed from the stage before it, then its SAEs beside it."""
    before, after = f"stage{number - 1}.pt", f"stage{number}"
    saes = " && ".join(f"{SAE_TRAIN} --policy {after}.pt --site {site} --out {after}.sae-{site}.pt" for site in SITES)
    return (f"git show {before_commit}:{OLD_POLICY} > {before} && {IMITATION} --out {after}.pt --init {before} "
            f"--seed {seed} {LATE_FLAGS} && {saes}  ({note})")


STAGES = (
    _in_git(1, "03a38ff", "367784d"),  # the SAEs were retrained on stage 1 after it shipped, and on stage 2 too
    _in_git(2, "f7b079a", "96b1e2c"),
    _in_git(3, "b856611", "b856611"),
    _in_git(4, "26b9a01", "26b9a01"),
    _in_git(5, "4f5b195", "4f5b195"),
    _in_git(6, "b617aba", "b617aba"),
    Stage(number=7, commit=None, policy=None, sha256_in=(f"{CARD_DIR}/stages/stage7.eval.json", JSON_SHA),
          rebuild=_rebuild(7, "b617aba", 5, "the card at commit 69a209e; about 60 minutes on 2 cores")),
    _in_git(8, "69a209e", "69a209e"),
    Stage(number=9, commit=None, policy=None,
          sha256_in=(f"{CARD_DIR}/card.md", r"Stage 9's weights are not in git \(sha256\s+`([0-9a-f]{64})`"),
          rebuild=_rebuild(9, "69a209e", 7, f"the card, {CARD_DIR}/card.md; about 25-60 minutes on 2 cores, 88 on "
                           "one thread beside other jobs")),
    Stage(number=10, commit=None, policy=f"{CARD_DIR}/policy.pt", sha256_in=(f"{CARD_DIR}/card.md",
          r"\*\*sha256\*\*: `([0-9a-f]{64})`"), saes=tuple(
          (site, f"fixtures/saes/customcnn_bc_{site}/sae.pt", f"fixtures/saes/customcnn_bc_{site}/card.md")
          for site in SITES)),
)  # fmt: skip
"""The ten stages of the shipped agent (its card, ``fixtures/agents/customcnn_bc/card.md``)."""


def _read(root: Path, commit: str | None, path: str) -> bytes:
    """A file of the working tree (``commit`` None) or of a commit, as bytes."""
    if commit is None:
        try:
            return (root / path).read_bytes()
        except OSError as exc:
            raise ClaimError(f"cannot read {path} in {root}: {exc}") from exc
    try:
        done = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True, check=True)
    except FileNotFoundError as exc:
        raise ClaimError("rebuilding stages from history needs git on the PATH") from exc
    except subprocess.CalledProcessError as exc:
        raise ClaimError(
            f"git cannot show {commit}:{path} in {root} ({exc.stderr.decode(errors='replace').strip()}); a shallow "
            "clone lacks the history: run git fetch --unshallow"
        ) from exc
    return done.stdout


def _stated(root: Path, source: tuple[str, str]) -> str:
    """The sha256 a card or evaluation states: the pattern's group in the file."""
    path, pattern = source
    found = re.search(pattern, _read(root, None, path).decode("utf-8"))
    if found is None:
        raise ClaimError(f"{path} no longer states a sha256 matching {pattern!r}; update STAGES in {__name__}")
    return found.group(1)


def _card_prefixes(card: str) -> tuple[str, str]:
    """An SAE card's sha256 prefixes: of the SAE and of the policy it was trained on."""
    sae = re.search(r"SAE checkpoint\*\*: \S+ \(sha256 ([0-9a-f]+)\)", card)
    policy = re.search(r"\*\*policy\*\*: \S+ \(sha256 ([0-9a-f]+)\)", card)
    if sae is None or policy is None:
        raise ClaimError("an SAE card states no 'SAE checkpoint' or 'policy' sha256; cannot check its SAE")
    return sae.group(1), policy.group(1)


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _stage_entry(root: Path, out: Path, stage: Stage) -> dict[str, Any]:
    expected = _stated(root, stage.sha256_in)
    target = out / f"{stage.label}.pt"
    entry: dict[str, Any] = {"stage": stage.number, "label": stage.label, "sha256": expected,
                             "sha256_stated_in": stage.sha256_in[0]}  # fmt: skip
    if stage.policy is None:
        entry["rebuild"] = stage.rebuild
        if not target.is_file():
            return {**entry, "status": "missing"}
        actual = _sha(target.read_bytes())  # a rebuilt file the user put here
        status = "rebuilt, sha256 as stated" if actual == expected else "rebuilt, sha256 differs from the card's"
        saes = {site: {"file": f"{stage.label}.sae-{site}.pt", "source": "rebuilt beside it",
                       "sha256": _sha((out / f"{stage.label}.sae-{site}.pt").read_bytes())}
                for site in SITES if (out / f"{stage.label}.sae-{site}.pt").is_file()}  # fmt: skip
        return {**entry, "status": status, "policy": target.name, "actual_sha256": actual, "saes": saes}
    data = _read(root, stage.commit, stage.policy)
    if _sha(data) != expected:
        raise ClaimError(f"{stage.label}: {stage.commit or 'the tree'}:{stage.policy} has sha256 {_sha(data)}, but "
                         f"{stage.sha256_in[0]} states {expected}; the history or the card changed")  # fmt: skip
    _write(target, data)
    entry.update(status="written", policy=target.name, source=f"{stage.commit or 'working tree'}:{stage.policy}")
    saes = {}
    for site, path, card_path in stage.saes:
        commit = stage.sae_commit if stage.commit is not None else None
        sae, card = _read(root, commit, path), _read(root, commit, card_path).decode("utf-8")
        sae_prefix, policy_prefix = _card_prefixes(card)
        if not _sha(sae).startswith(sae_prefix) or not expected.startswith(policy_prefix):
            raise ClaimError(
                f"{stage.label}: the {site} SAE at {commit or 'the tree'}:{path} has sha256 {_sha(sae)[:16]} and its "
                f"card names SAE {sae_prefix} trained on policy {policy_prefix}, not this stage's {expected[:16]}"
            )
        _write(out / f"{stage.label}.sae-{site}.pt", sae)
        saes[site] = {"file": f"{stage.label}.sae-{site}.pt", "source": f"{commit or 'working tree'}:{path}",
                      "sha256": _sha(sae), "card": f"{commit or 'working tree'}:{card_path}"}  # fmt: skip
    return {**entry, "saes": saes}


def rebuild_stages(out: str | os.PathLike, *, root: str | os.PathLike = ".") -> dict[str, Any]:
    """Write every stage kept in git (or in the tree) into ``out`` with its SAEs, each checked against the sha256
    its card states, and ``out/stages.json``; returns that manifest.  Missing stages are listed with their rebuild
    command (a rebuilt ``stageN.pt`` put in ``out`` is checked, never trained here).

        manifest = rebuild_stages("checkpoints/customcnn_bc")
        [s["label"] for s in manifest["stages"] if s["status"] == "missing"]  # ['stage7', 'stage9']
    """
    root, out = Path(root).resolve(), Path(out)
    if out.exists() and not out.is_dir():
        raise ClaimError(f"--out {out} is a file; give a folder for the stages")
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"agent": CARD_DIR, "stages": [_stage_entry(root, out, stage) for stage in STAGES]}
    (out / "stages.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest
