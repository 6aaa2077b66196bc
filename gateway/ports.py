"""Loopback ports: whether one is free, and free ones for a stack of its own.

Ports for a stack of its own are taken below the kernel's ephemeral range: a port that
bind(0) hands out is one that any outgoing connection may take next as its own, and a
test that stops a replica for a while would find its port (or its metrics port) taken
by a connection when it starts it again.
"""

import random
import socket

# Handed out by this process already: never twice, even before a server listens there.
_HANDED_OUT = set()
LOWEST = 10000


def port_is_free(port):
    """Tell whether a server could listen on the loopback port (TIME_WAIT does not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def first_ephemeral_port():
    """The first port of the range the kernel picks outgoing connections' ports from."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            return int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port_range(count):
    """Return the first of count consecutive loopback ports that are free, below the
    ephemeral range, and not handed out before by this process."""
    highest = first_ephemeral_port() - count
    for _ in range(200):
        first = random.randrange(LOWEST, highest)
        ports = range(first, first + count)
        if _HANDED_OUT.isdisjoint(ports) and all(port_is_free(port) for port in ports):
            _HANDED_OUT.update(ports)
            return first
    raise RuntimeError(f"no {count} consecutive free ports below {highest + count}")


def free_port():
    """Return a loopback TCP port that nothing listens on right now (free_port_range)."""
    return free_port_range(1)
