"""gunicorn's gevent worker, which closes its idle keep-alive connections as it stops.

Apart from servicekit.gunicorn, which every service's master imports: this one imports
gevent, which only a service that runs this worker (the logger) installs.
"""

import contextlib

import gevent
from gunicorn.workers import ggevent


class GeventWorker(ggevent.GeventWorker):
    """gunicorn's gevent worker, whose stop does not wait on idle keep-alive connections.

    A stopping gevent worker closes its listening sockets, then waits until every
    connection has ended, up to graceful_timeout. A keep-alive connection waiting for its
    next request ends only after keepalive seconds, and the gateway keeps idle ones open:
    each stop would take graceful_timeout (20 s). Here a stopping worker ends those waits,
    as gthread does, and the requests in flight finish.
    """

    def init_process(self):
        self.waiting = {}  # greenlet: the timeout of its wait for a request
        super().init_process()

    @contextlib.contextmanager
    def timeout_ctx(self):
        """The wait for a connection's next request: keepalive seconds, or until a stop.

        gunicorn reads the request within it; a timeout ends the wait with no request,
        and gunicorn then closes the connection.
        """
        timeout = gevent.Timeout(self.cfg.keepalive, False)  # False: silent
        current = gevent.getcurrent()
        self.waiting[current] = timeout
        try:
            with timeout:
                yield
        finally:
            del self.waiting[current]

    def notify(self):
        """The heartbeat, every second, running or stopping: once stopping, end the waits."""
        super().notify()
        if not self.alive:
            for greenlet, timeout in list(self.waiting.items()):
                greenlet.kill(timeout, block=False)
