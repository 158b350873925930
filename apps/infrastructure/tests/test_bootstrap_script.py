"""The bastion bootstrap script: shellcheck-clean, harmless with every block switched off, and
loud about the step that failed. Plain pytest functions, no database."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bastion-bootstrap.sh"
BASH = shutil.which("bash") or "/bin/bash"

# (toggle, step name) in the order the script runs them.
BLOCKS = [
    ("BASELINE_PKGS", "baseline packages"),
    ("INSTALL_DOCKER", "docker"),
    ("SSH_HARDEN", "ssh hardening"),
    ("FIREWALL", "firewall"),
    ("AUTO_UPDATES", "automatic updates"),
    ("TIME_SYNC", "time sync"),
    ("FAIL2BAN", "fail2ban"),
    ("BANNER", "banner"),
]
ALL_OFF = {toggle: "0" for toggle, _ in BLOCKS} | {"WAIT_CLOUD_INIT": "0"}
PACKAGE_MANAGERS = ("apt-get", "dnf", "yum", "zypper", "apk")
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def _shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "shellcheck"]
        done = subprocess.run(install, check=False, capture_output=True, env=env, timeout=600)
        if done.returncode != 0:
            subprocess.run(
                ["apt-get", "update", "-qq"], check=False, capture_output=True, env=env, timeout=600
            )
            subprocess.run(install, check=False, capture_output=True, env=env, timeout=600)
    found = shutil.which("shellcheck")
    if not found:
        pytest.skip("shellcheck is not installed and could not be installed (needs root + apt)")
    return found


def _run_script(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real script the way Autoglue does: `bash -s` with the script on stdin."""
    return subprocess.run(
        [BASH, "-s"],
        input=SCRIPT.read_text(),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_shellcheck_reports_nothing_for_the_bootstrap_script():
    result = subprocess.run(
        [_shellcheck(), "-x", str(SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("path", ["inherited", "empty"])
def test_with_every_block_switched_off_the_script_skips_each_step_and_reports_ready(tmp_path, path):
    # With PATH pointing at an empty directory any external command would fail: the all-off
    # run must get by on bash builtins alone, so it cannot change anything on the host.
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin") if path == "inherited" else str(empty),
        "HOME": str(tmp_path),
        "TMPDIR": str(scratch),
        **ALL_OFF,
    }

    result = _run_script(env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert "==> step: wait for cloud-init (skipped: WAIT_CLOUD_INIT=0)" in lines
    for toggle, name in BLOCKS:
        assert f"==> step: {name} (skipped: {toggle}=0)" in lines
    assert lines[-1] == "==> bastion ready"
    assert "!!" not in result.stdout
    assert list(scratch.iterdir()) == []  # not even a scratch directory was created


def test_a_step_that_finds_no_package_manager_fails_and_names_the_step(tmp_path):
    # The script appends the sbin directories to PATH itself; make sure none of them holds
    # a package manager, or detection would (rightly) succeed.
    if any(os.path.exists(os.path.join(d, pm)) for d in SBIN_DIRS for pm in PACKAGE_MANAGERS):
        pytest.skip("a package manager lives in an sbin directory on this machine")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {"PATH": str(empty), "HOME": str(tmp_path), **ALL_OFF, "BASELINE_PKGS": "1"}

    result = _run_script(env)

    assert result.returncode != 0
    # As root the package step runs and fails; as another user (no sudo on the empty PATH)
    # the privilege check in preflight stops the run first.
    step = "baseline packages" if os.geteuid() == 0 else "preflight"
    assert f"!! bootstrap failed at step {step} (exit 1)" in result.stderr
    if os.geteuid() == 0:
        assert "no supported package manager found" in result.stderr
    assert "==> bastion ready" not in result.stdout


def test_a_toggle_that_is_not_0_or_1_is_rejected_before_anything_runs():
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **ALL_OFF, "FIREWALL": "yes"}

    result = _run_script(env)

    assert result.returncode != 0
    assert "FIREWALL must be 0 or 1, got 'yes'" in result.stderr
    assert "!! bootstrap failed at step preflight (exit 1)" in result.stderr
    assert "==> step: baseline packages" not in result.stdout
