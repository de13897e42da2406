"""Run a command in a private mount namespace where one folder is hidden and its content is
visible at another path instead: a Ray node that does not have the driver's mount, like
a worker machine that mounts the shared filesystem elsewhere (or not at all).

    unshare -m --propagation private python -m tests.cluster.blind_node SRC ALT HIDE -- CMD...

binds SRC at ALT, then mounts an empty tmpfs over HIDE, then execs CMD. Needs root (or
CAP_SYS_ADMIN) for ``unshare -m``; the test skips with that reason where it is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> None:
    split = argv.index("--")
    src, alt, hide = argv[:split]
    cmd = argv[split + 1:]
    subprocess.run(["mount", "--bind", src, alt], check=True, timeout=30)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", hide], check=True, timeout=30)
    os.execvp(cmd[0], cmd)


if __name__ == "__main__":
    main(sys.argv[1:])
