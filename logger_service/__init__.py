"""The logger service: records every input durably and can forward it to the predictors."""


def create_app(test_config=None):
    """Create the logger app (app.py).

    Imported at the call: gunicorn's master imports this package for the metrics it
    serves itself (metrics.py), and the app's libraries must be imported only in the
    workers, once the gevent worker has monkey-patched the standard library. psycopg, for
    one, picks how it waits for the database as it is imported: imported before, it
    would block a worker's every greenlet for each query.
    """
    from .app import create_app as create

    return create(test_config)
