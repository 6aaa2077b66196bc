"""Run `PYTHON -m gunicorn ...` in this process, with a pause after every socket write.

    python -m tests.servicekit.slow_writes PYTHON -m gunicorn -c CONFIG

The wrapper of a GunicornServer in test_one_write_response.py. Loopback TCP keeps no
write boundaries: two writes in quick succession can reach the reader as one read.
With a pause after each write, a client's first recv() ends where the server's first
write ended, and so shows what that write held.
"""

import runpy
import socket
import sys
import time

PAUSE_SECONDS = 0.3


def pause_after(sendall):
    """Wrap socket.sendall so that it pauses once it has sent everything."""

    def sendall_then_pause(sock, data, *args):
        result = sendall(sock, data, *args)
        time.sleep(PAUSE_SECONDS)
        return result

    return sendall_then_pause


def main(command):
    """Run command, a `PYTHON -m gunicorn ...` line, as that interpreter would."""
    _python, option, module, *args = command
    if (option, module) != ("-m", "gunicorn"):
        raise SystemExit(f"expected PYTHON -m gunicorn ..., got {command}")
    socket.socket.sendall = pause_after(socket.socket.sendall)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
