"""Loopback ports: whether one is free, and free ones for a stack of its own."""

import socket


def port_is_free(port):
    """Tell whether a server could listen on the loopback port (TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port():
    """Return a loopback TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_port_range(count):
    """Return the first of count consecutive free loopback ports."""
    for _ in range(50):
        first = free_port()
        if first + count < 65536 and all(port_is_free(first + n) for n in range(count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports")
