"""Shell completion as typer provides it: `releasectl --install-completion bash` writes a script that,
sourced by bash, completes command names through the real `releasectl` (a new process per completion)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_install_completion_for_bash_completes_commands(tmp_path):
    assert (BIN / "releasectl").exists(), "the releasectl entry point is not installed in this venv"
    env = {"HOME": str(tmp_path), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "SHELL": "/bin/bash"}
    installed = subprocess.run([str(BIN / "releasectl"), "--install-completion", "bash"], env=env, cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "releasectl.sh"
    assert script.is_file() and str(script) in (tmp_path / ".bashrc").read_text()

    def complete(*words: str) -> list[str]:
        line = "releasectl " + " ".join(words)
        probe = (f'source "{script}"; COMP_WORDS=({line}); COMP_CWORD={len(words)}; '
                 '_releasectl_completion releasectl; printf "%s\\n" "${COMPREPLY[@]}"')
        done = subprocess.run(["bash", "--norc", "--noprofile", "-c", probe], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert complete("ro") == ["rollout", "rollback"]
    assert "prune" in complete("images", "")
    assert "--pipeline" in complete("rollout", "--p")
