"""The HTTP plumbing both services share: JSON errors, request hooks, fields, probes, gunicorn.

It is not installed: it sits beside logger_service/ and predictor_service/, in the
repository and in each service's image (/app), and the services import it from there.
"""
