"""The gateway's control plane, in Python: Nginx itself is configured in nginx/.

It renders Nginx's configuration for a local run (render), runs the whole stack on one
machine under supervisord (runner, supervisor) and restarts its replicas one at a time
(restart):

    python -m gateway up
    python -m gateway config --predictors 5
    python -m gateway restart predictor
"""
