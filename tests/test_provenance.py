"""Where a run came from (harness.claims.provenance): a run is dirty when tracked code differs from its commit, not
when a report it (or another run) wrote does."""

import shutil
import subprocess

import pytest

from harness.claims.provenance import run_environment


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dirty_means_tracked_code_differs_not_a_written_report(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)  # fmt: skip

    (tmp_path / "reports").mkdir()
    (tmp_path / "claims").mkdir()
    (tmp_path / "reports" / "claims.md").write_text("old verdicts\n")
    (tmp_path / "claims" / "test_a.py").write_text("BOUND = 0.1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    assert run_environment(tmp_path)["git_dirty"] is False
    (tmp_path / "reports" / "claims.md").write_text("new verdicts\n")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert run_environment(tmp_path)["git_dirty"] is False
    (tmp_path / "claims" / "test_a.py").write_text("BOUND = 0.2\n")
    assert run_environment(tmp_path)["git_dirty"] is True
    assert run_environment(tmp_path / "reports")["git_dirty"] is True  # a project in a folder of the repository
