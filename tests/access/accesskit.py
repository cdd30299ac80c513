"""The gpubill CLI as a real subprocess, for the access tests."""

import subprocess
import sys


def gpubill(*args, env=None):
    """Run the real CLI; (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "gpubill", *map(str, args)], capture_output=True, env=env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()
