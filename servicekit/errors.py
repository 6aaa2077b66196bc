"""Domain errors that carry the HTTP status a client gets, as MLServer's MLServerError does."""


class ServiceError(Exception):
    """A failure to tell the client about, raised where it happens.

    Subclasses set status, and headers when the answer needs some (Retry-After, say);
    str(error) is the message. servicekit.api.Api answers it in the one JSON error
    shape, so that no view has to catch it only to call abort().
    """

    status = 500
    headers = {}
